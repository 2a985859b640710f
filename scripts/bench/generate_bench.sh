#!/usr/bin/env bash
# Generation benchmark: ortrain predict vs HF generate vs CTranslate2 on a
# t5-small-sized model (see generate_bench.py). Needs a Python with torch,
# transformers, tokenizers, onnx, onnxruntime and ctranslate2 ($PYTHON,
# default .venv/bin/python). Extra arguments go to generate_bench.py.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
py="${PYTHON:-.venv/bin/python}"
export PATH="$(dirname "$py"):$PATH"
lib="$("$root/scripts/fetch-onnxruntime.sh")"
export ORTRAIN_ORT_LIB="${ORTRAIN_ORT_LIB:-$lib}"
bin="$(mktemp -d)/ortrain"
(cd "$root" && go build -o "$bin" ./cmd/ortrain)
exec "$py" "$root/scripts/bench/generate_bench.py" --ortrain "$bin" "$@"
