#!/usr/bin/env bash
# Peak RSS and wall time of a whole `ortrain train` run on the
# t5-small-sized model (made by lora_step_bench.sh in WORKDIR):
# a few steps, evaluation with generation, checkpoints, with LoRA (r 8,
# q,v) and with full fine-tuning, on the FLAN-T5 tokenizer and Tatoeba
# en-ro sentences of testdata/realdata. Runs alternate; the figures are the
# median over ROUNDS rounds.
#
#   scripts/bench/lora_run_rss.sh [WORKDIR] [THREADS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/tmp/ortrain-bench-t5-small}
threads=${2:-1}
cd "$root"
[ -f "$work/model.onnx" ] || { echo "run scripts/bench/lora_step_bench.sh $work first (it makes the model)" >&2; exit 1; }
go build -o "$work/ortrain" ./cmd/ortrain
# Artifacts of the whole folder (with the generation graphs), configs beside them.
[ -f "$work.run-art-full/manifest.json" ] || "$work/ortrain" artifacts --model "$work" --out "$work.run-art-full" --no-dropout >/dev/null
[ -f "$work.run-art-lora/manifest.json" ] || "$work/ortrain" artifacts --model "$work" --out "$work.run-art-lora" --no-dropout \
  --lora_r 8 --lora_alpha 16 --lora_target_modules q,v >/dev/null
for kind in full lora; do cp "$work/config.json" "$work/generation_config.json" "$work.run-art-$kind/"; done
data=testdata/realdata/translation/tatoeba-en-ro
python3 - "$data" "$work" <<'PY'
import json, sys
d, w = sys.argv[1], sys.argv[2]
for split, src, n in (("train", "train", 64), ("dev", "dev", 16)):
    en = open(f"{d}/{src}.en").read().splitlines()[:n]
    ro = open(f"{d}/{src}.ro").read().splitlines()[:n]
    with open(f"{w}/{split}.jsonl", "w") as f:
        for a, b in zip(en, ro):
            f.write(json.dumps({"translation": {"en": a, "ro": b}}) + "\n")
PY
rounds=${ROUNDS:-2}
for r in $(seq 1 "$rounds"); do
  for kind in full lora; do
    rm -rf "$work/run-$kind"
    /usr/bin/time -v -o "$work/run-$kind.$r.time" "$work/ortrain" train --no-progress --artifacts "$work.run-art-$kind" \
      --tokenizer testdata/realdata/tokenizers/flan-t5-small --train_file "$work/train.jsonl" --validation_file "$work/dev.jsonl" \
      --source_lang en --target_lang ro --output_dir "$work/run-$kind" --do_train --max_steps 4 --per_device_train_batch_size 8 \
      --eval_strategy steps --eval_steps 4 --save_steps 4 --predict_with_generate --generation_max_length 16 \
      --per_device_eval_batch_size 16 --threads "$threads" --learning_rate 1e-4 > "$work/run-$kind.$r.log"
  done
done
python3 - "$work" "$rounds" <<'PY'
import re, statistics, sys
w, rounds = sys.argv[1], int(sys.argv[2])
print("| run (4 steps, eval with generation, 1 checkpoint) | wall (s) | peak RSS (MiB) | checkpoint size |\n|---|---|---|---|")
import os
for kind in ("full", "lora"):
    t = [open(f"{w}/run-{kind}.{r}.time").read() for r in range(1, rounds + 1)]
    rss = statistics.median(int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", x).group(1)) / 1024 for x in t)
    def wall(x):
        v = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", x).group(1).split(":")
        return sum(float(p) * 60 ** i for i, p in enumerate(reversed(v)))
    ck = os.path.join(w, f"run-{kind}", "checkpoint-4")
    size = sum(os.path.getsize(os.path.join(ck, f)) for f in os.listdir(ck))
    print(f"| {'LoRA r8 q,v' if kind == 'lora' else 'full fine-tuning'} | {statistics.median(wall(x) for x in t):.1f} | {rss:.0f} | {size / 2**20:.2f} MiB |")
PY
