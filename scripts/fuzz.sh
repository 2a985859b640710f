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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for t in "${targets[@]}"; do
  set -- $t
  corpus="$1/testdata/fuzz/$2"
  before=$(ls "$corpus" 2>/dev/null | wc -l)
  # Go 1.26's fuzz coordinator can report a bare "context deadline
  # exceeded" when -fuzztime ends while a worker is busy (golang/go#75804,
  # fixed in Go 1.27), most often on a loaded machine. That is no finding:
  # a finding writes its input to the corpus. Such a run is repeated (at
  # most twice) and only the last attempt's output is shown.
  for attempt in 1 2 3; do
    # -fuzzminimizetime bounds the minimisation of new inputs, which would
    # otherwise eat a short budget.
    go test "${json[@]}" -run '^$' -fuzz "^$2\$" -fuzztime "$budget" -fuzzminimizetime 100x "$1" >"$log" 2>&1
    rc=$?
    after=$(ls "$corpus" 2>/dev/null | wc -l)
    if [ $rc -ne 0 ] && [ "$after" = "$before" ] && [ $attempt -lt 3 ] &&
      grep -q 'context deadline exceeded' "$log" && ! grep -qE 'Failing input written|panic:' "$log"; then
      echo "fuzz: $2: the fuzz coordinator's deadline race (golang/go#75804), no input found; running it again" >&2
      continue
    fi
    break
  done
  cat "$log"
  [ $rc -eq 0 ] || status=1
done
exit $status
