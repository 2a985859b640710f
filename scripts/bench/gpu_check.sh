#!/usr/bin/env bash
# One pass of the GPU-host checks (issues 15, 16, 17), for a host with a CUDA
# PyTorch but without Go: ORTRAIN (the ortrain binary) and ORTRAIN_ORT_LIB
# (ONNX Runtime 1.29.0 with its CUDA provider) set as the staging described in
# ../shared/device/README.md sets them, and BIN a folder with binaries built
# elsewhere:
#   go build -o BIN/ncclcheck ./internal/ncclcheck
#   go build -o BIN/cudacheck ./internal/cudacheck
#   go build -o BIN/bench scripts/bench/train_step_bench.go
# Stages, each on its own (one failing does not stop the others):
#   1. ortrain env; NCCL in a one-process world over ONNX Runtime's device
#      buffers (ncclcheck); device-resident parameter updates (cudacheck)
#   2. predict on cuda:0 equals predict on the CPU (t5-tiny, greedy, beam 4)
#   3. the t5-small-sized model (scripts/fixtures/make_t5_small.py): one
#      training step, float32 and bfloat16 autocast, ortrain vs PyTorch eager
#      (scripts/bench/gpu_bench.py) on the same batch: step time, tokens/s,
#      peak device memory (nvidia-smi for both, torch's counters too)
#   4. generation throughput on cuda:0, ortrain predict vs HF generate()
#
#   BIN=DIR scripts/bench/gpu_check.sh [WORK]      (BATCH SRC TGT STEPS in the environment;
#                                                   STAGES="2 4" runs only those stages)
set -uo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/ortrain-gpu-check}
mkdir -p "$work"
BIN=${BIN:-}
py=${PYTHON:-python3}
batch=${BATCH:-32}; src=${SRC:-128}; tgt=${TGT:-128}; steps=${STEPS:-10}
if [ -z "${ORTRAIN_NCCL_LIB:-}" ]; then
  so=$("$py" -c 'import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], "lib", "libnccl.so.2"))' 2>/dev/null) &&
    [ -f "$so" ] && export ORTRAIN_NCCL_LIB=$so
fi

# peak MiB of device memory in use while a command runs (nvidia-smi every
# 50 ms), minus what was in use before it
peak() {
  local log="$work/smi.$$" base
  base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > "$log" 2>/dev/null &
  local smi=$!
  "$@"; local rc=$?
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
  # on stderr, so that a command whose output is thrown away still shows it
  echo "device memory: peak $(sort -n "$log" | tail -1) MiB in use, $base MiB before (nvidia-smi)" >&2
  return $rc
}

stages=" ${STAGES:-1 2 3 4} "
want() { [[ $stages == *" $1 "* ]]; }
stage() { echo; echo "=== $*"; }

# live placement from ONNX Runtime's verbose log (ORTRAIN_ORT_LOG_LEVEL=verbose):
# per execution provider, the nodes its sessions placed there, and the op types
# of the nodes that a session with CUDA nodes left on the CPU
placement() {
  awk -v label="$2" '
    function flush() {
      if (!cur) return
      if (cuda_here) { k++; for (o in here) ops[o] += here[o]; on_cuda += cuda_here; in_cuda_sessions += total_here }
      else { probe++; probe_nodes += total_here }
      delete here; cur = 0; cuda_here = 0; total_here = 0
    }
    /Node placements/ { flush(); cur = 1; ep = ""; next }
    /placed on \[/ {
      match($0, /placed on \[[A-Za-z]+\]/); ep = substr($0, RSTART + 11, RLENGTH - 12)
      match($0, /Number of nodes: [0-9]+/); c = substr($0, RSTART + 17) + 0
      total_here += c; if (ep == "CUDAExecutionProvider") cuda_here += c
      next
    }
    cur && ep == "CPUExecutionProvider" && /\]   *[A-Za-z0-9_]+ \(/ { x = $0; sub(/.*\]   */, "", x); sub(/ \(.*/, "", x); here[x]++; next }
    /kernel not found/ { missing++ }
    END {
      flush()
      printf "%s: %d sessions with CUDA nodes: %d of their %d nodes on CUDA", label, k, on_cuda, in_cuda_sessions
      printf "; %d sessions all on the CPU (%d nodes)\n", probe, probe_nodes
      if (length(ops)) { printf "  left on the CPU in sessions with CUDA nodes:"; for (o in ops) printf " %s x%d", o, ops[o]; printf "\n" }
      if (missing) printf "  \"kernel not found\" lines: %d\n", missing
    }' "$1"
}

# the t5-small-sized model of stages 3 and 4
m=$work/t5-small
if { want 3 || want 4; } && [ ! -f "$m/decoder_with_past_model.onnx" ]; then
  timeout 240 "$py" scripts/fixtures/make_t5_small.py --out "$m" 2>&1 | grep -v Warning | tail -3
fi

if want 1; then
stage "1. environment, NCCL, device-resident updates"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$ORTRAIN" env
echo "NCCL: ${ORTRAIN_NCCL_LIB:-libnccl.so.2 on the library path}"
timeout 120 "$BIN/ncclcheck" --device cuda:0 || echo "ncclcheck failed: $?"
timeout 120 "$BIN/cudacheck" --device cuda:0 || echo "cudacheck failed: $?"
fi

if want 2; then
stage "2. predict on cuda:0 against the CPU (t5-tiny)"
T=testdata/generate/predict
for beams in 1 4; do
  for dev in cpu cuda:0; do
    timeout 120 "$ORTRAIN" predict --model testdata/models/t5-tiny --tokenizer "$T/tokenizer.json" --input "$T/input.txt" \
      --output "$work/tiny.$dev.$beams.txt" --refs "$T/refs.txt" --num-beams "$beams" --batch-size 4 --device "$dev" --no-progress >/dev/null ||
      echo "predict $dev beams=$beams failed: $?"
  done
  ORTRAIN_ORT_LOG_LEVEL=verbose timeout 120 "$ORTRAIN" predict --model testdata/models/t5-tiny --tokenizer "$T/tokenizer.json" --input "$T/input.txt" \
    --output "$work/tiny.verbose.$beams.txt" --num-beams "$beams" --batch-size 4 --device cuda:0 --no-progress >/dev/null 2> "$work/placement-predict-$beams.log"
  placement "$work/placement-predict-$beams.log" "live placement, t5-tiny predict beams=$beams"
  if cmp -s "$work/tiny.cpu.$beams.txt" "$work/tiny.cuda:0.$beams.txt"; then
    echo "t5-tiny beams=$beams: cuda:0 predictions identical to cpu ($(wc -l < "$work/tiny.cpu.$beams.txt") lines)"
  else
    echo "t5-tiny beams=$beams: cuda:0 predictions DIFFER from cpu"; diff "$work/tiny.cpu.$beams.txt" "$work/tiny.cuda:0.$beams.txt" | head -10
  fi
done
fi

if want 3; then
stage "3. training step of the t5-small-sized model, ortrain vs PyTorch eager on cuda:0"
"$py" scripts/bench/gpu_bench.py batch "$m" --batch "$batch" --src "$src" --tgt "$tgt"
echo "batch $batch x $src source / $tgt target tokens, $steps steps after warm-up"
for dtype in float32 bfloat16; do
  flags=(); variant=""
  [ "$dtype" = bfloat16 ] && flags=(--bf16) && variant=autocast-bfloat16-cuda
  art=$work/artifacts-$dtype
  [ -f "$art/manifest.json" ] || timeout 300 "$ORTRAIN" artifacts --model "$m/model.onnx" --out "$art" --no-dropout --device cuda "${flags[@]}" >/dev/null ||
    echo "artifacts $dtype failed: $?"
  ORTRAIN_ORT_LOG_LEVEL=verbose timeout 300 "$BIN/bench" -artifacts "$art" -batch "$m/batch.json" -device cuda -threads 1 -steps 1 -warmup 0 \
    -variant "$variant" > /dev/null 2> "$work/placement-train-$dtype.log"
  placement "$work/placement-train-$dtype.log" "live placement, t5-small training step $dtype"
  peak timeout 300 "$BIN/bench" -artifacts "$art" -batch "$m/batch.json" -device cuda -threads 1 -steps "$steps" -warmup 3 -variant "$variant" ||
    echo "ortrain step $dtype failed: $?"
  peak timeout 300 "$py" scripts/bench/gpu_bench.py step "$m" --dtype "$dtype" --steps "$steps" || echo "torch step $dtype failed: $?"
done
fi

if want 4; then
stage "4. generation throughput on cuda:0, ortrain predict vs HF generate()"
tok=testdata/realdata/tokenizers/flan-t5-small/tokenizer.json
in=$work/bench.txt
"$py" -c "
import random; random.seed(5)
print('\n'.join(' '.join('w%d' % random.randrange(3, 32000) for _ in range(random.randrange(10, 31))) for _ in range(${SENTENCES:-256})))" > "$in"
echo '{"min_new_tokens": 32, "max_new_tokens": 32}' > "$work/gen.json"
for beams in 1 4; do
  peak timeout 300 "$ORTRAIN" predict --model "$m" --tokenizer "$tok" --input "$in" --output "$work/gen.$beams.txt" --refs "$in" \
    --num-beams "$beams" --batch-size 32 --device cuda:0 --no-progress --generation-config "$work/gen.json" >/dev/null &&
    "$py" -c "import json; r=json.load(open('$work/gen.$beams.txt.metrics.json')); print('ortrain predict cuda:0 beams=$beams: %.1f sentences/s' % r['sentences_per_second'])" ||
    echo "ortrain predict beams=$beams failed"
  peak timeout 300 "$py" scripts/bench/gpu_bench.py generate "$m" --input "$in" --tokenizer "$tok" --beams "$beams" --batch 32 ||
    echo "HF generate beams=$beams failed"
done
fi
