#!/usr/bin/env bash
# Generation speed with a LoRA adapter, unmerged and merged, against the
# base model: `ortrain predict` on the t5-small-sized T5 (random weights,
# scripts/fixtures/make_t5_small.py; made here when WORKDIR lacks it) with
# an adapter of r 8, alpha 16 on q,v (PEFT's get_peft_model with lora_B
# drawn at random so that it changes the model; needs peft), over Tatoeba
# en-ro dev sentences with the FLAN-T5 tokenizer, greedy, one thread:
#   base      predict --model WORKDIR
#   unmerged  predict --model WORKDIR --adapter ADAPTER
#   merged    predict --model WORKDIR --adapter ADAPTER --merge_lora
# Runs alternate (ROUNDS rounds); the figures are medians of the report's
# seconds (encoding, generation and decoding, without opening the model)
# and of the wall time of the whole command (with building the adapted
# graphs).
#
#   PYTHON=/path/to/venv/bin/python scripts/bench/lora_predict_bench.sh [WORKDIR] [THREADS] [LINES]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/tmp/ortrain-bench-t5-small}
threads=${2:-1}; lines=${3:-32}
py=${PYTHON:-.venv/bin/python}
export ORTRAIN_ORT_LIB=${ORTRAIN_ORT_LIB:-$("$root/scripts/fetch-onnxruntime.sh")}
cd "$root"
[ -f "$work/decoder_with_past_model.onnx" ] || "$py" scripts/fixtures/make_t5_small.py --out "$work"
go build -o "$work.ortrain" ./cmd/ortrain
adapter="$work.adapter"
if [ ! -f "$adapter/adapter_model.safetensors" ]; then
  "$py" - "$work" "$adapter" <<'PY'
import sys, torch
from peft import LoraConfig, get_peft_model
from transformers import T5ForConditionalGeneration
torch.manual_seed(0)
m = get_peft_model(T5ForConditionalGeneration.from_pretrained(sys.argv[1]),
                   LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q", "v"], task_type="SEQ_2_SEQ_LM"))
with torch.no_grad():
    for n, p in m.named_parameters():
        if "lora_B" in n:
            p.normal_(0, 0.02)
m.save_pretrained(sys.argv[2])
PY
fi
data=testdata/realdata/translation/tatoeba-en-ro
head -n "$lines" "$data/dev.en" > "$work.src.txt"
head -n "$lines" "$data/dev.ro" > "$work.ref.txt"
tok=testdata/realdata/tokenizers/flan-t5-small
rounds=${ROUNDS:-3}
for r in $(seq 1 "$rounds"); do
  for kind in base unmerged merged; do
    extra=()
    case $kind in
      unmerged) extra=(--adapter "$adapter") ;;
      merged) extra=(--adapter "$adapter" --merge_lora) ;;
    esac
    rm -f "$work.$kind.txt"
    start=$(date +%s.%N)
    "$work.ortrain" predict --no-progress --model "$work" --tokenizer "$tok" --input "$work.src.txt" --output "$work.$kind.txt" \
      --refs "$work.ref.txt" --report "$work.$kind.$r.json" --num-beams 1 --max-new-tokens 32 --threads "$threads" "${extra[@]}" >/dev/null
    end=$(date +%s.%N)
    echo "$start $end" > "$work.$kind.$r.wall"
  done
done
uptime
python3 - "$work" "$rounds" "$threads" "$lines" <<'PY'
import json, statistics, sys
w, rounds, threads, lines = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
res = {}
for k in ("base", "unmerged", "merged"):
    gen = statistics.median(json.load(open(f"{w}.{k}.{r}.json"))["seconds"] for r in range(1, rounds + 1))
    wall = statistics.median((lambda a, b: b - a)(*map(float, open(f"{w}.{k}.{r}.wall").read().split())) for r in range(1, rounds + 1))
    res[k] = (gen, wall)
same = open(f"{w}.unmerged.txt").read() == open(f"{w}.merged.txt").read()
print(f"t5-small-sized T5, LoRA r 8 q,v, {lines} Tatoeba sentences, greedy, max 32 new tokens, {threads} thread(s), median of {rounds} rounds")
print("| predict | generation (s) | / base | whole command (s) |\n|---|---|---|---|")
for k, n in (("base", "base model"), ("unmerged", "--adapter (unmerged)"), ("merged", "--adapter --merge_lora")):
    print(f"| {n} | {res[k][0]:.2f} | {res[k][0] / res['base'][0]:.2f} | {res[k][1]:.1f} |")
print(f"merged and unmerged predictions identical: {same}")
PY
