#!/usr/bin/env bash
# Assemble a CUDA build of ONNX Runtime 1.29.0 in the user cache: the core
# library from onnxruntime-node@1.29.0 (via fetch-onnxruntime.sh) plus the
# CUDA provider libraries from the npm package
# com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 (ONNX Runtime 1.29.0,
# CUDA 13, cuDNN 9). Prints the core library path; pass it as --ort-lib or
# ORTRAIN_ORT_LIB. The host needs the CUDA 13 runtime, cuBLAS and cuDNN 9
# libraries on LD_LIBRARY_PATH (e.g. the nvidia-* pip packages of a CUDA 13
# PyTorch install).
#
# With --from DIR, the two provider libraries are taken from DIR instead of
# the npm registry (for GPU hosts without network access).
set -euo pipefail
cd "$(dirname "$0")/.."

pkg=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
cuda_sha=56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037
shared_sha=c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772
from=""
if [ "${1:-}" = "--from" ]; then from=${2:?--from needs a folder}; fi

core=$(scripts/fetch-onnxruntime.sh)
dest="${XDG_CACHE_HOME:-$HOME/.cache}/ortrain/onnxruntime/1.29.0-cuda"
mkdir -p "$dest"
ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if ! ok "$dest/libonnxruntime_providers_cuda.so" "$cuda_sha" || ! ok "$dest/libonnxruntime_providers_shared.so" "$shared_sha"; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  if [ -z "$from" ]; then
    echo "fetch-onnxruntime-cuda: downloading $pkg (about 180 MB)" >&2
    (cd "$work" && npm pack --silent "$pkg" >/dev/null)
    tar -xzf "$work"/*.tgz -C "$work" package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so package/Plugins/Linux/x64/libonnxruntime_providers_shared.so
    from="$work/package/Plugins/Linux/x64"
  fi
  ok "$from/libonnxruntime_providers_cuda.so" "$cuda_sha" || { echo "fetch-onnxruntime-cuda: bad checksum for libonnxruntime_providers_cuda.so" >&2; exit 1; }
  ok "$from/libonnxruntime_providers_shared.so" "$shared_sha" || { echo "fetch-onnxruntime-cuda: bad checksum for libonnxruntime_providers_shared.so" >&2; exit 1; }
  for f in libonnxruntime_providers_cuda.so libonnxruntime_providers_shared.so; do
    cp "$from/$f" "$dest/$f.tmp.$$" && mv -f "$dest/$f.tmp.$$" "$dest/$f"
  done
fi
cp "$core" "$dest/libonnxruntime.so.1.tmp.$$" && mv -f "$dest/libonnxruntime.so.1.tmp.$$" "$dest/libonnxruntime.so.1"
echo "$dest/libonnxruntime.so.1"
