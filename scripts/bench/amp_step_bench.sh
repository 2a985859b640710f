#!/usr/bin/env bash
# Mixed-precision training-step benchmark on the CPU: ortrain's float32
# graphs against its float16 autocast graphs (CPU op lists, GradScaler) on a
# t5-small-sized T5 with random weights, same batch, same threads, no
# dropout. A measure of what the CPU path costs: ONNX Runtime's CPU provider
# has float16 kernels for few operators (MatMul, Gemm, LayerNormalization,
# ...), runs the others through inserted casts to float32, and its float16
# MatMul converts to float32 too; the speed of mixed precision is a GPU's.
# Runs alternate (ROUNDS rounds of each); reports median step time, target
# tokens/s, their ratio and peak RSS (/usr/bin/time -v).
#
#   scripts/bench/amp_step_bench.sh [WORKDIR] [THREADS] [BATCH] [SRC] [TGT] [STEPS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/tmp/ortrain-bench-t5-small}
threads=${2:-1}; batch=${3:-8}; src=${4:-64}; tgt=${5:-32}; steps=${6:-5}
py=${PYTHON:-.venv/bin/python}
export ORTRAIN_ORT_LIB=${ORTRAIN_ORT_LIB:-$("$root/scripts/fetch-onnxruntime.sh")}
cd "$root"
if [ ! -f "$work/model.onnx" ]; then
  "$py" scripts/bench/train_step_bench.py export "$work" --batch "$batch" --src "$src" --tgt "$tgt"
fi
go build -o "$work/ortrain" ./cmd/ortrain
"$work/ortrain" artifacts --model "$work/model.onnx" --out "$work/artifacts-amp" --no-dropout --fp16 --device cpu >/dev/null
go build -o "$work/bench" scripts/bench/train_step_bench.go
rounds=${ROUNDS:-3}
for r in $(seq 1 "$rounds"); do
  for v in float32 float16; do
    variant=""; [ "$v" = float16 ] && variant=autocast-float16-cpu
    /usr/bin/time -v -o "$work/amp-$v.$r.time" "$work/bench" -artifacts "$work/artifacts-amp" -batch "$work/batch.json" \
      -threads "$threads" -steps "$steps" -variant "$variant" > "$work/amp-$v.$r.json"
  done
done
uptime
"$py" - "$work" "$rounds" <<'PY'
import json, re, statistics, sys
w, rounds = sys.argv[1], int(sys.argv[2])
res = {}
for v in ("float32", "float16"):
    runs = [json.load(open(f"{w}/amp-{v}.{r}.json")) for r in range(1, rounds + 1)]
    rss = [int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{w}/amp-{v}.{r}.time").read()).group(1)) / 1024
           for r in range(1, rounds + 1)]
    res[v] = {"step": statistics.median(s for run in runs for s in run["step_s"]), "tokens": runs[0]["target_tokens_per_step"],
              "rss": max(rss), "first_loss": runs[0]["first_loss"], "threads": runs[0]["threads"], "steps": runs[0]["steps"],
              "fwdbwd": statistics.median(run["train_micro_batch_s_median"] for run in runs),
              "optim": statistics.median(run["optimizer_step_s_median"] for run in runs)}
a, b = res["float32"], res["float16"]
print(f"t5-small-sized, {a['tokens']} target tokens/step, {a['threads']} threads, median of {rounds}x{a['steps']} steps each (CPU)")
for v, r in res.items():
    print(f"  {v:8s} step {r['step']:.3f} s (forward+backward {r['fwdbwd']:.3f} s, optimizer {r['optim']:.3f} s)  "
          f"{r['tokens'] / r['step']:7.1f} tokens/s  peak RSS {r['rss']:.0f} MiB  first-step loss {r['first_loss']:.5f}")
print(f"  ratio float16/float32 step time: {b['step'] / a['step']:.2f}  peak RSS: {b['rss'] / a['rss']:.2f}")
PY
