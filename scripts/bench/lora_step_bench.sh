#!/usr/bin/env bash
# LoRA training-step benchmark on a t5-small-sized T5 (random weights, see
# train_step_bench.py): step time and peak RSS of
#   ortrain full fine-tuning, ortrain LoRA (r 8, alpha 16, q,v),
#   PyTorch eager full fine-tuning, PyTorch + PEFT LoRA (same config),
# on the same batch with the same thread count, no dropout; runs alternate
# (ROUNDS rounds of each) and step times are medians over all measured steps.
#
#   scripts/bench/lora_step_bench.sh [WORKDIR] [THREADS] [STEPS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/tmp/ortrain-bench-t5-small}
threads=${2:-1}; steps=${3:-5}
py=${PYTHON:-.venv/bin/python}
export ORTRAIN_ORT_LIB=${ORTRAIN_ORT_LIB:-$("$root/scripts/fetch-onnxruntime.sh")}
cd "$root"
if [ ! -f "$work/model.onnx" ]; then
  "$py" scripts/bench/train_step_bench.py export "$work" --batch 8 --src 64 --tgt 32
fi
go build -o "$work/ortrain" ./cmd/ortrain
[ -f "$work/art-full/manifest.json" ] || "$work/ortrain" artifacts --model "$work/model.onnx" --out "$work/art-full" --no-dropout >/dev/null
[ -f "$work/art-lora/manifest.json" ] || "$work/ortrain" artifacts --model "$work/model.onnx" --out "$work/art-lora" --no-dropout \
  --lora_r 8 --lora_alpha 16 --lora_target_modules q,v >/dev/null
go build -o "$work/bench" scripts/bench/train_step_bench.go
rounds=${ROUNDS:-2}
for r in $(seq 1 "$rounds"); do
  for kind in full lora; do
    /usr/bin/time -v -o "$work/ortrain-$kind.$r.time" "$work/bench" -artifacts "$work/art-$kind" -batch "$work/batch.json" \
      -threads "$threads" -steps "$steps" > "$work/ortrain-$kind.$r.json"
  done
  /usr/bin/time -v -o "$work/torch-full.$r.time" "$py" scripts/bench/train_step_bench.py torch "$work" --threads "$threads" \
    --steps "$steps" > "$work/torch-full.$r.json"
  /usr/bin/time -v -o "$work/torch-lora.$r.time" "$py" scripts/bench/train_step_bench.py torch "$work" --threads "$threads" \
    --steps "$steps" --lora 8 > "$work/torch-lora.$r.json"
done
uptime
"$py" - "$work" "$rounds" "$threads" <<'PY'
import json, re, statistics, sys
w, rounds, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
res = {}
for k in ("ortrain-full", "ortrain-lora", "torch-full", "torch-lora"):
    runs = [json.load(open(f"{w}/{k}.{r}.json")) for r in range(1, rounds + 1)]
    rss = [int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{w}/{k}.{r}.time").read()).group(1)) / 1024
           for r in range(1, rounds + 1)]
    res[k] = {"step": statistics.median(s for run in runs for s in run["step_s"]), "rss": max(rss), "loss": runs[0]["first_loss"]}
print(f"t5-small-sized (60.5 M parameters), batch 8 x 64 source / 32 target tokens, {threads} thread(s), median of {rounds} rounds")
names = {"ortrain-full": "ortrain full fine-tuning", "ortrain-lora": "ortrain LoRA r8 q,v", "torch-full": "PyTorch full fine-tuning",
         "torch-lora": "PyTorch + PEFT LoRA r8 q,v"}
print("| run | step (s) | peak RSS (MiB) | first-step loss |\n|---|---|---|---|")
for k, n in names.items():
    r = res[k]
    print(f"| {n} | {r['step']:.3f} | {r['rss']:.0f} | {r['loss']:.5f} |")
o, t = res["ortrain-lora"], res["torch-lora"]
print(f"LoRA / full: ortrain step {o['step'] / res['ortrain-full']['step']:.2f}, RSS {o['rss'] / res['ortrain-full']['rss']:.2f}; "
      f"PyTorch step {t['step'] / res['torch-full']['step']:.2f}, RSS {t['rss'] / res['torch-full']['rss']:.2f}")
print(f"ortrain LoRA / PEFT LoRA: step {o['step'] / t['step']:.2f}, RSS {o['rss'] / t['rss']:.2f}")
PY
