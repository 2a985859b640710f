#!/usr/bin/env bash
# Check the NCCL path on a GPU host (issue 17): NCCL loaded at run time,
# initialised in a world of one process on the GPU, and in-place averages
# over buffers that ONNX Runtime allocated in GPU memory, read back and
# compared (internal/ncclcheck; it prints JSON). NCCL is $ORTRAIN_NCCL_LIB,
# else the libnccl.so.2 of the Python's nvidia-nccl-cu13/-cu12 package,
# else libnccl.so.2 on the library path.
#
# A host with Go: scripts/check-nccl.sh [--device cuda:0 --n 16777216 --rounds 10]
#   (assembles ONNX Runtime's CUDA build as scripts/check-cuda.sh does).
# A GPU host without Go or network (../shared/device/README.md): here,
#   go build -o /tmp/ncclcheck ./internal/ncclcheck && ../shared/device/stage.sh /tmp/ncclcheck
# upload .device/a* and .device/b, then on the host:
#   source .device/b/unpack.sh && scripts/check-nccl.sh
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
if [ -z "${ORTRAIN_NCCL_LIB:-}" ]; then
  if so=$("$py" -c 'import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], "lib", "libnccl.so.2"))' 2>/dev/null) && [ -f "$so" ]; then
    export ORTRAIN_NCCL_LIB=$so
  fi
fi
echo "NCCL: ${ORTRAIN_NCCL_LIB:-libnccl.so.2 on the library path}" >&2
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2 || true
if [ -x /tmp/ortcuda/ncclcheck ] && [ -n "${ORTRAIN_ORT_LIB:-}" ]; then
  exec /tmp/ortcuda/ncclcheck "$@"
fi
lib=$(scripts/fetch-onnxruntime-cuda.sh)
if nv=$("$py" -c 'import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))' 2>/dev/null); then
  for d in "$nv"/nvidia/*/lib "$nv"/nvidia/cu13/lib; do
    [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
  done
  export LD_LIBRARY_PATH
fi
go run ./internal/ncclcheck --ort-lib "$lib" "$@"
