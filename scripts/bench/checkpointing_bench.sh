#!/usr/bin/env bash
# Gradient checkpointing benchmark on a t5-small-sized T5 (random weights,
# see train_step_bench.py), batch 8 x 128 source / 128 target tokens: peak
# RSS and step time of a training step (one micro-batch + AdamW) without and
# with --gradient_checkpointing, in ortrain and in PyTorch eager (HF's
# activation_checkpointing_enable), same batch, same thread count, no
# dropout. Runs alternate (ROUNDS rounds of each); step times are medians
# over all measured steps, peak RSS the largest of the rounds.
#
#   scripts/bench/checkpointing_bench.sh [WORKDIR] [THREADS] [STEPS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/tmp/ortrain-bench-t5-small-128}
threads=${2:-1}; steps=${3:-3}
py=${PYTHON:-.venv/bin/python}
export ORTRAIN_ORT_LIB=${ORTRAIN_ORT_LIB:-$("$root/scripts/fetch-onnxruntime.sh")}
cd "$root"
if [ ! -f "$work/model.onnx" ]; then
  "$py" scripts/bench/train_step_bench.py export "$work" --batch 8 --src 128 --tgt 128
fi
go build -o "$work/ortrain" ./cmd/ortrain
[ -f "$work/art-plain/manifest.json" ] || "$work/ortrain" artifacts --model "$work/model.onnx" --out "$work/art-plain" --no-dropout >/dev/null
[ -f "$work/art-ckpt/manifest.json" ] || "$work/ortrain" artifacts --model "$work/model.onnx" --out "$work/art-ckpt" --no-dropout \
  --gradient_checkpointing >/dev/null
go build -o "$work/bench" scripts/bench/train_step_bench.go
rounds=${ROUNDS:-2}
for r in $(seq 1 "$rounds"); do
  for kind in plain ckpt; do
    /usr/bin/time -v -o "$work/ortrain-$kind.$r.time" "$work/bench" -artifacts "$work/art-$kind" -batch "$work/batch.json" \
      -threads "$threads" -steps "$steps" -warmup 1 > "$work/ortrain-$kind.$r.json"
  done
  /usr/bin/time -v -o "$work/torch-plain.$r.time" "$py" scripts/bench/train_step_bench.py torch "$work" --threads "$threads" \
    --steps "$steps" --warmup 1 > "$work/torch-plain.$r.json"
  /usr/bin/time -v -o "$work/torch-ckpt.$r.time" "$py" scripts/bench/train_step_bench.py torch "$work" --threads "$threads" \
    --steps "$steps" --warmup 1 --checkpointing > "$work/torch-ckpt.$r.json"
done
uptime
"$py" - "$work" "$rounds" "$threads" <<'PY'
import json, re, statistics, sys
w, rounds, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
res = {}
for k in ("ortrain-plain", "ortrain-ckpt", "torch-plain", "torch-ckpt"):
    runs = [json.load(open(f"{w}/{k}.{r}.json")) for r in range(1, rounds + 1)]
    rss = [int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{w}/{k}.{r}.time").read()).group(1)) / 1024
           for r in range(1, rounds + 1)]
    res[k] = {"step": statistics.median(s for run in runs for s in run["step_s"]), "rss": max(rss), "rss_all": rss,
              "loss": runs[0]["first_loss"]}
print(f"t5-small-sized (60.5 M parameters), batch 8 x 128 source / 128 target tokens, {threads} thread(s), {rounds} rounds")
names = {"ortrain-plain": "ortrain", "ortrain-ckpt": "ortrain --gradient_checkpointing",
         "torch-plain": "PyTorch", "torch-ckpt": "PyTorch, activation checkpointing"}
print("| run | step (s) | peak RSS (MiB) | RSS of each round | first-step loss |\n|---|---|---|---|---|")
for k, n in names.items():
    r = res[k]
    print(f"| {n} | {r['step']:.3f} | {r['rss']:.0f} | {', '.join(f'{x:.0f}' for x in r['rss_all'])} | {r['loss']:.5f} |")
for impl in ("ortrain", "torch"):
    p, c = res[f"{impl}-plain"], res[f"{impl}-ckpt"]
    print(f"{impl}: checkpointing / not: peak RSS {c['rss'] / p['rss']:.2f} ({c['rss'] - p['rss']:+.0f} MiB), step {c['step'] / p['step']:.2f}")
o, t = res["ortrain-ckpt"], res["torch-ckpt"]
print(f"with checkpointing, ortrain / PyTorch: peak RSS {o['rss'] / t['rss']:.2f}, step {o['step'] / t['step']:.2f}")
PY
