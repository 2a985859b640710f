#!/usr/bin/env bash
# Fetch the pinned ONNX Runtime CPU library into the per-user cache.
#
# Source: npm package onnxruntime-node@1.29.0, file
# bin/napi-v6/linux/x64/libonnxruntime.so.1 (the official 1.29.0 CPU build).
# Idempotent: a cached library with the right checksum is reused, so it works
# offline once cached. Prints the library path on stdout.
#
# To use another build instead, skip this script and pass --ort-lib PATH or set
# ORTRAIN_ORT_LIB (see README "Using another ONNX Runtime build").
set -euo pipefail

version=1.29.0
sha256=89688f5cf51c7e31befbb7b9101bc027799009b18d1baa9a5b1146a72e69538d
member=package/bin/napi-v6/linux/x64/libonnxruntime.so.1

cache="${XDG_CACHE_HOME:-$HOME/.cache}/ortrain/onnxruntime/$version"
lib="$cache/libonnxruntime.so.1"

have_sum() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sha256" ]; }

if have_sum "$lib"; then
  echo "$lib"
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) echo "fetch-onnxruntime: this script fetches the linux/x86_64 build only; on $(uname -s)/$(uname -m) pass --ort-lib or set ORTRAIN_ORT_LIB to your own libonnxruntime" >&2; exit 1 ;;
esac
command -v npm >/dev/null || { echo "fetch-onnxruntime: npm is needed to download onnxruntime-node@$version from the npm registry" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "fetch-onnxruntime: downloading onnxruntime-node@$version (about 110 MB)" >&2
(cd "$work" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tar -xzf "$work"/onnxruntime-node-$version.tgz -C "$work" "$member"
if ! have_sum "$work/$member"; then
  echo "fetch-onnxruntime: checksum mismatch for $member (want $sha256)" >&2
  exit 1
fi
mkdir -p "$cache"
# Copy then rename, so a concurrent or interrupted run never leaves a partial library.
cp "$work/$member" "$lib.tmp.$$"
mv -f "$lib.tmp.$$" "$lib"
echo "$lib"
