#!/usr/bin/env bash
# Run every parser's Go fuzz target for a fixed budget each (default 10s;
# ORTRAIN_FUZZTIME=30s, or 0 to skip). Their seed corpora (f.Add and
# PKG/testdata/fuzz/NAME/, crashers found so far included) also run as
# ordinary tests under `go test ./...`. A crash writes its input to
# PKG/testdata/fuzz/NAME/ and fails the run; commit it with the fix.
#
#   scripts/fuzz.sh           # human-readable: executions per target
#   scripts/fuzz.sh -json     # go test -json events (scripts/test.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
budget="${ORTRAIN_FUZZTIME:-10s}"
[ "$budget" = 0 ] && exit 0
json=()
[ "${1:-}" = -json ] && json=(-json)
targets=(
  "./internal/onnx FuzzLoadModel"            # ONNX model and external data
  "./internal/safetensors FuzzDecode"        # safetensors
  "./tokenize FuzzTokenizerJSON"             # tokenizer.json
  "./tokenize FuzzSPM"                       # SentencePiece .spm / .model
  "./internal/data FuzzRecords"              # JSONL, CSV, TSV data files
  "./internal/data FuzzColumnar"             # Parquet and Arrow IPC data files
  "./generate FuzzGenerationConfig"          # generation_config.json, config.json
  "./ortrain FuzzTrainingConfig"             # --config (JSON, YAML)
  "./ortrain FuzzTrainerState"               # checkpoint trainer_state.json
  "./internal/ortckpt FuzzDecode"            # ONNX Runtime checkpoint flatbuffers
  "./metrics FuzzStatsFile"                  # score --merge statistics
)
status=0
for t in "${targets[@]}"; do
  set -- $t
  # -fuzzminimizetime bounds the minimisation of new inputs, which would
  # otherwise eat a short budget.
  go test "${json[@]}" -run '^$' -fuzz "^$2\$" -fuzztime "$budget" -fuzzminimizetime 100x "$1" || status=1
done
exit $status
