#!/usr/bin/env bash
# Run every test against the real ONNX Runtime: fetches the pinned library
# (idempotent, cached per user), then runs `go test` over all packages and
# every fuzz target for a fixed budget (scripts/fuzz.sh), and prints one
# closing line "N passed, N failed, N skipped".
#
# Extra arguments go to `go test` (e.g. scripts/test.sh -run TestBLEU).
set -euo pipefail
cd "$(dirname "$0")/.."

lib=$(scripts/fetch-onnxruntime.sh)
export ORTRAIN_ORT_LIB="$lib"
echo "ONNX Runtime: $lib"

# The 2.25 GiB save/load test (5 GiB of memory, 2.3 GB of disk, ~20 s) runs
# when the machine has room for it: 6 GB free in the temporary folder and
# 8 GiB of memory available. ORTRAIN_TEST_2GB=0 turns it off.
if [ -z "${ORTRAIN_TEST_2GB:-}" ]; then
  free_kb=$(df -Pk "${TMPDIR:-/tmp}" | awk 'NR==2 {print $4}')
  mem_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)
  if [ "${free_kb:-0}" -gt 6000000 ] && [ "${mem_kb:-0}" -gt 8000000 ]; then
    export ORTRAIN_TEST_2GB=1
  fi
fi

go build ./...
go vet ./...
set +e
# Then each parser's fuzz target for a fixed budget (scripts/fuzz.sh;
# ORTRAIN_FUZZTIME=0 skips them), when the whole suite runs.
{
  go test -count=1 -json -timeout 40m "$@" ./...
  [ $# -eq 0 ] && scripts/fuzz.sh -json
} | go run ./internal/testsummary
status=${PIPESTATUS[1]}
exit "$status"
