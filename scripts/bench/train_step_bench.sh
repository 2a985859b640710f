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
py=${PYTHON:-/work/pyenv/bin/python}
export ORTRAIN_ORT_LIB=${ORTRAIN_ORT_LIB:-$("$root/scripts/fetch-onnxruntime.sh")}
cd "$root"
if [ ! -f "$work/model.onnx" ]; then
  "$py" scripts/bench/train_step_bench.py export "$work" --batch "$batch" --src "$src" --tgt "$tgt"
fi
go build -o "$work/ortrain" ./cmd/ortrain
"$work/ortrain" artifacts --model "$work/model.onnx" --out "$work/artifacts" --no-dropout >/dev/null
go build -o "$work/bench" scripts/bench/train_step_bench.go
/usr/bin/time -v -o "$work/ortrain.time" "$work/bench" -artifacts "$work/artifacts" -batch "$work/batch.json" \
  -threads "$threads" -steps "$steps" > "$work/ortrain.json"
/usr/bin/time -v -o "$work/torch.time" "$py" scripts/bench/train_step_bench.py torch "$work" --threads "$threads" \
  --steps "$steps" > "$work/torch.json"
"$py" - "$work" <<'PY'
import json, re, sys
w = sys.argv[1]
o, t = json.load(open(f"{w}/ortrain.json")), json.load(open(f"{w}/torch.json"))
rss = {k: int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{w}/{k}.time").read()).group(1)) / 1024
       for k in ("ortrain", "torch")}
print(f"t5-small-sized, {o['target_tokens_per_step']} target tokens/step, {o['threads']} threads, median of {o['steps']} steps")
for name, r, k in (("ortrain", o, "ortrain"), ("pytorch eager", t, "torch")):
    print(f"  {name:14s} step {r['step_s_median']:.3f} s  {r['tokens_per_s']:8.1f} tokens/s  peak RSS {rss[k]:.0f} MiB  loss {r['final_loss']:.4f}")
print(f"  ratio ortrain/pytorch step time: {o['step_s_median'] / t['step_s_median']:.2f}  "
      f"RSS: {rss['ortrain'] / rss['torch']:.2f}")
PY
