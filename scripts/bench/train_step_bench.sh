#!/usr/bin/env bash
# Training-step benchmark: ortrain (ONNX Runtime, CPU) vs PyTorch eager on a
# t5-small-sized T5 with random weights, same batch, same thread count, no
# dropout. Reports median step time, target tokens/s, the peak RSS of each
# process (/usr/bin/time -v), their ratios, and where each process's memory
# is (after loading, the arena's share, the peak).
#
#   scripts/bench/train_step_bench.sh [WORKDIR] [THREADS] [BATCH] [SRC] [TGT] [STEPS]
#
# ROUNDS (default 2): runs of each, alternated so that load from other
# processes hits all alike; step times are medians over all measured steps,
# peak RSS the median over the rounds (and the largest seen).
# BASELINE=REV also runs the ortrain of git revision REV (built from
# `git archive`) on the same artifacts, interleaved, to measure a change.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/tmp/ortrain-bench-t5-small}
threads=${2:-2}; batch=${3:-8}; src=${4:-64}; tgt=${5:-32}; steps=${6:-5}
py=${PYTHON:-.venv/bin/python}
export ORTRAIN_ORT_LIB=${ORTRAIN_ORT_LIB:-$("$root/scripts/fetch-onnxruntime.sh")}
cd "$root"
if [ ! -f "$work/model.onnx" ]; then
  "$py" scripts/bench/train_step_bench.py export "$work" --batch "$batch" --src "$src" --tgt "$tgt"
fi
go build -o "$work/ortrain" ./cmd/ortrain
"$work/ortrain" artifacts --model "$work/model.onnx" --out "$work/artifacts" --no-dropout >/dev/null
go build -o "$work/bench" scripts/bench/train_step_bench.go
kinds="ortrain torch"
if [ -n "${BASELINE:-}" ]; then
  rm -rf "$work/baseline-src" && mkdir -p "$work/baseline-src"
  git -C "$root" archive "$BASELINE" | tar -x -C "$work/baseline-src"
  (cd "$work/baseline-src" && go build -o "$work/bench-baseline" scripts/bench/train_step_bench.go)
  kinds="baseline ortrain torch"
fi
rounds=${ROUNDS:-2}
for r in $(seq 1 "$rounds"); do
  for k in $kinds; do
    case $k in
      ortrain) cmd=("$work/bench" -artifacts "$work/artifacts" -batch "$work/batch.json" -threads "$threads" -steps "$steps") ;;
      baseline) cmd=("$work/bench-baseline" -artifacts "$work/artifacts" -batch "$work/batch.json" -threads "$threads" -steps "$steps") ;;
      torch) cmd=("$py" scripts/bench/train_step_bench.py torch "$work" --threads "$threads" --steps "$steps") ;;
    esac
    /usr/bin/time -v -o "$work/$k.$r.time" "${cmd[@]}" > "$work/$k.$r.json"
  done
done
uptime
"$py" - "$work" "$rounds" "$kinds" <<'PY'
import json, re, statistics, sys
w, rounds, kinds = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
res = {}
for k in kinds:
    runs = [json.load(open(f"{w}/{k}.{r}.json")) for r in range(1, rounds + 1)]
    rss = [int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{w}/{k}.{r}.time").read()).group(1)) / 1024
           for r in range(1, rounds + 1)]
    steps = [s for run in runs for s in run["step_s"]]
    res[k] = {"step": statistics.median(steps), "tokens": runs[0]["target_tokens_per_step"], "rss": statistics.median(rss),
              "rss_max": max(rss), "first_loss": runs[0]["first_loss"], "extra": runs[0],
              "med": lambda key, runs=runs: statistics.median(r[key] for r in runs) if all(key in r for r in runs) else None}
o, t = res["ortrain"], res["torch"]
print(f"t5-small-sized, {o['tokens']} target tokens/step, {o['extra']['threads']} thread(s), "
      f"median of {rounds}x{o['extra']['steps']} steps each, runs interleaved")
names = {"baseline": "ortrain (baseline)", "ortrain": "ortrain", "torch": "pytorch eager"}
for k in kinds:
    r = res[k]
    print(f"  {names[k]:18s} step {r['step']:.3f} s  {r['tokens'] / r['step']:8.1f} tokens/s  peak RSS {r['rss']:.0f} MiB "
          f"(max {r['rss_max']:.0f})  first-step loss {r['first_loss']:.5f}")
if o["med"]("rss_after_open_mib") is not None:
    print(f"  ortrain memory: {o['med']('rss_after_open_mib'):.0f} MiB after opening the artifacts "
          f"({o['extra']['trainable_params'] * 16 / 2**20:.0f} MiB of it parameters, gradient sums and AdamW moments), "
          f"shared CPU arena {o['med']('arena_reserved_mib'):.0f} MiB reserved, {o['med']('arena_max_in_use_mib'):.0f} MiB the most in use")
if t["med"]("rss_after_load_mib") is not None:
    print(f"  pytorch memory: {t['med']('rss_after_load_mib'):.0f} MiB after loading the model and making the optimizer "
          f"(gradients and moments come with the first step)")
if "optimizer_step_s_median" in o["extra"]:
    print(f"  ortrain split (first round): micro-batch {o['extra']['train_micro_batch_s_median']:.3f} s, "
          f"optimizer {o['extra']['optimizer_step_s_median']:.3f} s")
print(f"  ratio ortrain/pytorch step time: {o['step'] / t['step']:.2f}  peak RSS: {o['rss'] / t['rss']:.2f}")
if "baseline" in res:
    b = res["baseline"]
    print(f"  ratio ortrain/baseline step time: {o['step'] / b['step']:.2f}  peak RSS: {o['rss'] / b['rss']:.2f}")
PY
