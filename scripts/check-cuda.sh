#!/usr/bin/env bash
# Check the CUDA path on a GPU host: assembles ONNX Runtime 1.29.0 with its
# CUDA provider (scripts/fetch-onnxruntime-cuda.sh; pass --from DIR when the
# host has no network and the provider libraries were copied there), puts the
# CUDA 13 libraries of the nvidia-* pip packages on LD_LIBRARY_PATH if a
# Python with them is found, and runs internal/cudacheck, which prints what it
# measured (device-resident parameter updates on cuda:0 vs the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
lib=$(scripts/fetch-onnxruntime-cuda.sh "$@")
py=${PYTHON:-python3}
if nv=$("$py" -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null); then
  for d in "$nv"/nvidia/*/lib "$nv"/nvidia/cu13/lib; do
    [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
  done
  export LD_LIBRARY_PATH
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
# CUDACHECK_ARGS may add e.g. "--n 4096 --steps 100".
# shellcheck disable=SC2086
go run ./internal/cudacheck --ort-lib "$lib" ${CUDACHECK_ARGS:-}
