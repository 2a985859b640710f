#!/usr/bin/env bash
# Peak memory (maximum resident set size, GNU time) of ortrain train,
# predict, score and tokenize on inputs of 1x, 10x and 100x a base size and
# on one 200 MB line. Memory should grow with the work (linear in the
# input, flat where a limit bounds the work), never with a line's size
# times a large factor.
#
#   scripts/bench/peak_rss.sh [WORKDIR]     (default: a temporary folder)
#
# Inputs are made from the embedded demo's task (its model folder and
# sentences): train reads JSONL translation records (base 1 MB, about
# 11k records; --max_steps 2, sources and targets cut at 16 tokens),
# predict reads source lines (base 1000 lines; --max-new-tokens 2),
# score reads hypothesis/reference lines (base 10k lines), tokenize reads
# lines (base 10k lines). The 200 MB line is one record or line of demo
# words; train and predict meet it with their 16-token / model limits,
# score and tokenize with no limit (their work is the whole line).
# Prints one table row per run: command, input, input MB, peak RSS MB,
# RSS / input, seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
export ORTRAIN_ORT_LIB="$(scripts/fetch-onnxruntime.sh)"
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
bin="$work/ortrain"
go build -o "$bin" ./cmd/ortrain

# the demo's model folder and sentences
if [ ! -f "$work/demo/model/model.onnx" ]; then
  "$bin" train --demo --no-progress --output_dir "$work/demo" --num_train_epochs 1 >/dev/null
fi
model="$work/demo/model"

python3 - "$work" "$model/train.jsonl" <<'EOF'
import json, sys, os
work, train = sys.argv[1], sys.argv[2]
recs = [json.loads(l)["translation"] for l in open(train)]
def lines(n_bytes, key):
    out, size, i = [], 0, 0
    while size < n_bytes:
        s = recs[i % len(recs)][key]
        out.append(s); size += len(s) + 1; i += 1
    return out
def write(name, rows):
    with open(os.path.join(work, name), "w") as f:
        f.write("\n".join(rows) + "\n")
for scale in (1, 10, 100):
    n = 11000 * scale
    write(f"train-{scale}x.jsonl", [json.dumps({"translation": recs[i % len(recs)]}) for i in range(n)])
    write(f"pred-{scale}x.txt", [recs[i % len(recs)]["en"] for i in range(1000 * scale)])
    write(f"hyp-{scale}x.txt", [recs[i % len(recs)]["xx"] for i in range(10000 * scale)])
    write(f"ref-{scale}x.txt", [recs[(i + 1) % len(recs)]["xx"] for i in range(10000 * scale)])
    write(f"tok-{scale}x.txt", [recs[i % len(recs)]["en"] for i in range(10000 * scale)])
words = " ".join(r["en"] for r in recs)
big = (words + " ") * (200_000_000 // (len(words) + 1) + 1)
big = big[:200_000_000].rstrip()
write("line-200MB.txt", [big])
write("line-200MB-ref.txt", [big[::-1]])
with open(os.path.join(work, "train-200MB-line.jsonl"), "w") as f:
    f.write(json.dumps({"translation": {"en": big, "xx": "ta ko"}}) + "\n")
    for r in recs[:64]:
        f.write(json.dumps({"translation": r}) + "\n")
EOF

printf '%-9s %-22s %9s %11s %9s %8s\n' command input "input MB" "peak MB" "RSS/input" seconds
measure() { # name input_file args...
  local name=$1 input=$2; shift 2
  local size start end rss status
  size=$(stat -c %s "$input")
  start=$(date +%s.%N)
  set +e
  /usr/bin/time -f '%M' -o "$work/time.out" "$bin" "$@" >"$work/out.txt" 2>"$work/err.txt"
  status=$?
  set -e
  end=$(date +%s.%N)
  rss=$(tail -1 "$work/time.out")
  local note=""
  [ $status -ne 0 ] && note="  (exit $status: $(tail -c 200 "$work/err.txt" | tr '\n' ' '))"
  awk -v n="$name" -v i="$(basename "$input")" -v s="$size" -v r="$rss" -v a="$start" -v b="$end" -v note="$note" \
    'BEGIN { printf "%-9s %-22s %9.1f %11.1f %9.2f %8.1f%s\n", n, i, s/1e6, r/1024, (r*1024)/s, b-a, note }'
}
train_args=(train --no-progress --model "$model" --source_lang en --target_lang xx --do_train --max_steps 2
  --per_device_train_batch_size 8 --save_strategy no --report_to none --max_source_length 16 --max_target_length 16
  --overwrite_output_dir)
for s in 1 10 100; do
  measure train "$work/train-${s}x.jsonl" "${train_args[@]}" --train_file "$work/train-${s}x.jsonl" --output_dir "$work/t-$s"
done
measure train "$work/train-200MB-line.jsonl" "${train_args[@]}" --train_file "$work/train-200MB-line.jsonl" --output_dir "$work/t-line"
for s in 1 10 100; do
  measure predict "$work/pred-${s}x.txt" predict --no-progress --model "$model" --input "$work/pred-${s}x.txt" --output "$work/p-$s.txt" --max-new-tokens 2 --batch-size 32
done
measure predict "$work/line-200MB.txt" predict --no-progress --model "$model" --input "$work/line-200MB.txt" --output "$work/p-line.txt" --max-new-tokens 2 --truncate
for s in 1 10 100; do
  measure score "$work/hyp-${s}x.txt" score --metric bleu --hyp "$work/hyp-${s}x.txt" --ref "$work/ref-${s}x.txt"
done
measure score "$work/line-200MB.txt" score --metric bleu --hyp "$work/line-200MB.txt" --ref "$work/line-200MB-ref.txt"
for s in 1 10 100; do
  measure tokenize "$work/tok-${s}x.txt" tokenize --tokenizer "$model" "$work/tok-${s}x.txt"
done
measure tokenize "$work/line-200MB.txt" tokenize --tokenizer "$model" "$work/line-200MB.txt"
measure tokenize "$work/line-200MB.txt" tokenize --tokenizer "$model" --max-length 16 "$work/line-200MB.txt"
