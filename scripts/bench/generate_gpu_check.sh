#!/usr/bin/env bash
# GPU-host check of generation: `ortrain predict` on cuda:0 against the CPU,
# greedy and beam 4, on the tiny T5 fixture (predictions must be identical,
# and equal HF's in testdata/generate/predict/hf.json), then, when
# BENCH_MODEL names an Optimum-layout folder with a tokenizer.json (e.g. the
# t5-small-sized model scripts/bench/generate_bench.sh leaves in
# /tmp/ortrain-generate-bench/t5-small-random-v2), sentences/s on both
# devices. ONNX Runtime's CUDA build comes from scripts/fetch-onnxruntime-cuda.sh
# (pass --from DIR on hosts without network), CUDA 13 libraries from the
# nvidia-* pip packages of $PYTHON if present, as scripts/check-cuda.sh does.
set -euo pipefail
cd "$(dirname "$0")/../.."
lib=$(scripts/fetch-onnxruntime-cuda.sh "$@")
py=${PYTHON:-python3}
if nv=$("$py" -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null); then
  for d in "$nv"/nvidia/*/lib "$nv"/nvidia/cu13/lib; do
    [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
  done
  export LD_LIBRARY_PATH
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
work=$(mktemp -d)
go build -o "$work/ortrain" ./cmd/ortrain
T=testdata/generate/predict
status=0
for beams in 1 4; do
  for dev in cpu cuda:0; do
    "$work/ortrain" --ort-lib "$lib" predict --model testdata/models/t5-tiny --tokenizer "$T/tokenizer.json" \
      --input "$T/input.txt" --output "$work/$dev.$beams.txt" --refs "$T/refs.txt" --num-beams "$beams" \
      --batch-size 4 --device "$dev" --no-progress >/dev/null
  done
  if cmp -s "$work/cpu.$beams.txt" "$work/cuda:0.$beams.txt"; then
    echo "t5-tiny beams=$beams: cuda:0 predictions identical to cpu"
  else
    echo "t5-tiny beams=$beams: cuda:0 predictions DIFFER from cpu:"; diff "$work/cpu.$beams.txt" "$work/cuda:0.$beams.txt" | head -20
    status=1
  fi
done
if [ -n "${BENCH_MODEL:-}" ]; then
  in="$work/bench.txt"
  "$py" -c "
import random; random.seed(5)
print('\n'.join(' '.join('w%d' % random.randrange(3, 32000) for _ in range(random.randrange(10, 31))) for _ in range(${BENCH_SENTENCES:-256})))" > "$in"
  echo '{"min_new_tokens": 32, "max_new_tokens": 32}' > "$work/gen.json"
  for beams in 1 4; do
    for dev in cpu cuda:0; do
      "$work/ortrain" --ort-lib "$lib" predict --model "$BENCH_MODEL" --input "$in" --output "$work/b.$dev.$beams.txt" \
        --refs "$in" --num-beams "$beams" --batch-size "${BENCH_BATCH:-32}" --device "$dev" --no-progress \
        --generation-config "$work/gen.json" >/dev/null
      "$py" -c "import json; r=json.load(open('$work/b.$dev.$beams.txt.metrics.json')); print('bench beams=$beams $dev: %.1f sentences/s' % r['sentences_per_second'])"
    done
  done
fi
exit $status
