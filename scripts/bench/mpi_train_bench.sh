#!/usr/bin/env bash
# Data-parallel overhead on this machine: `mpirun -np 2 ortrain train` with
# one ONNX Runtime thread per process against one process with two threads,
# same global batch (2 x 16 vs 1 x 32, gradient accumulation 2), same
# steps, on the demo model and data (`ortrain train --demo` writes them to
# WORKDIR/demo/model). No evaluation or checkpoints in the timed part.
# For context, one process with one thread (batch 32) runs too: ONNX
# Runtime's two-thread pool costs or gains on its own.
# Runs alternate (ROUNDS rounds of each); prints the median
# train_samples_per_second of each and their ratio. A benchmark, not a test.
#
#   scripts/bench/mpi_train_bench.sh [WORKDIR] [STEPS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-/tmp/ortrain-bench-mpi}
steps=${2:-30}
rounds=${ROUNDS:-3}
export ORTRAIN_ORT_LIB=${ORTRAIN_ORT_LIB:-$("$root/scripts/fetch-onnxruntime.sh")}
mkdir -p "$work"
cd "$root"
go build -o "$work/ortrain" ./cmd/ortrain
model=$work/demo/model
if [ ! -f "$model/model.onnx" ]; then
  "$work/ortrain" train --demo --output_dir "$work/demo" --max_steps 1 --no-progress >/dev/null
fi
mpirun_root=""; [ "$(id -u)" = 0 ] && mpirun_root=--allow-run-as-root
common=(train --model "$model" --train_file "$model/train.jsonl" --source_lang en --target_lang xx
  --do_train --max_steps "$steps" --gradient_accumulation_steps 2 --logging_steps 10
  --save_strategy no --eval_strategy no --report_to none --no-progress --overwrite_output_dir)
for r in $(seq 1 "$rounds"); do
  "$work/ortrain" "${common[@]}" --output_dir "$work/one" --per_device_train_batch_size 32 --threads 2 >/dev/null
  cp "$work/one/train_results.json" "$work/one.$r.json"
  "$work/ortrain" "${common[@]}" --output_dir "$work/one1" --per_device_train_batch_size 32 --threads 1 >/dev/null
  cp "$work/one1/train_results.json" "$work/one1.$r.json"
  mpirun -np 2 --oversubscribe $mpirun_root "$work/ortrain" "${common[@]}" --output_dir "$work/two" \
    --per_device_train_batch_size 16 --threads 1 >/dev/null
  cp "$work/two/train_results.json" "$work/two.$r.json"
done
uptime
python3 - "$work" "$rounds" <<'PY'
import json, statistics, sys
w, rounds = sys.argv[1], int(sys.argv[2])
med = {}
for k in ("one", "one1", "two"):
    v = [json.load(open(f"{w}/{k}.{r}.json"))["train_samples_per_second"] for r in range(1, rounds + 1)]
    med[k] = statistics.median(v)
    print(f"{k}: samples/s {v} median {med[k]:.1f}")
print(f"1 process x 2 threads: {med['one']:.1f} samples/s; 2 processes x 1 thread (mpirun): {med['two']:.1f} samples/s; "
      f"ratio 2p/1p = {med['two'] / med['one']:.3f}; (1 process x 1 thread: {med['one1']:.1f} samples/s)")
PY
