#!/usr/bin/env bash
# Training-step benchmark: ortrain (ONNX Runtime, CPU) vs PyTorch eager on a
# t5-small-sized T5 with random weights, same batch, same thread count, no
# dropout. Reports median step time, target tokens/s, their ratio and the
# peak RSS of each process (/usr/bin/time -v).
#
#   scripts/bench/train_step_bench.sh [WORKDIR] [THREADS] [BATCH] [SRC] [TGT] [STEPS]
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
# Alternate the two (rounds of each) so that load from other processes on
# the machine hits both alike; the report takes the median over all steps.
rounds=${ROUNDS:-2}
for r in $(seq 1 "$rounds"); do
  /usr/bin/time -v -o "$work/ortrain.$r.time" "$work/bench" -artifacts "$work/artifacts" -batch "$work/batch.json" \
    -threads "$threads" -steps "$steps" > "$work/ortrain.$r.json"
  /usr/bin/time -v -o "$work/torch.$r.time" "$py" scripts/bench/train_step_bench.py torch "$work" --threads "$threads" \
    --steps "$steps" > "$work/torch.$r.json"
done
uptime
"$py" - "$work" "$rounds" <<'PY'
import json, re, statistics, sys
w, rounds = sys.argv[1], int(sys.argv[2])
res = {}
for k in ("ortrain", "torch"):
    runs = [json.load(open(f"{w}/{k}.{r}.json")) for r in range(1, rounds + 1)]
    rss = [int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{w}/{k}.{r}.time").read()).group(1)) / 1024
           for r in range(1, rounds + 1)]
    steps = [s for run in runs for s in run["step_s"]]
    res[k] = {"step": statistics.median(steps), "tokens": runs[0]["target_tokens_per_step"], "rss": max(rss),
              "first_loss": runs[0]["first_loss"], "extra": runs[0]}
o, t = res["ortrain"], res["torch"]
print(f"t5-small-sized, {o['tokens']} target tokens/step, {o['extra']['threads']} threads, "
      f"median of {rounds}x{o['extra']['steps']} steps each")
for name, k in (("ortrain", "ortrain"), ("pytorch eager", "torch")):
    r = res[k]
    print(f"  {name:14s} step {r['step']:.3f} s  {r['tokens'] / r['step']:8.1f} tokens/s  peak RSS {r['rss']:.0f} MiB  "
          f"first-step loss {r['first_loss']:.5f}")
if "optimizer_step_s_median" in o["extra"]:
    print(f"  ortrain split (first round): micro-batch {o['extra']['train_micro_batch_s_median']:.3f} s, "
          f"optimizer {o['extra']['optimizer_step_s_median']:.3f} s")
print(f"  ratio ortrain/pytorch step time: {o['step'] / t['step']:.2f}  peak RSS: {o['rss'] / t['rss']:.2f}")
PY
