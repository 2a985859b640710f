#!/usr/bin/env bash
# Peak RSS (GNU time) of streaming every record of a large Parquet file and
# of the same records as JSONL through ortrain's record reader
# (scripts/bench/columnar_rss.go), interleaved, RUNS times each.
#
#   scripts/bench/columnar_rss.sh [WORKDIR] [SIZE_MB] [RUNS]   (defaults: a temporary folder, 1024, 3)
#
# Needs a Python with pyarrow (scripts/requirements-dataformats.txt) as
# $PYTHON (default python3) to write the files once (make_big_parquet.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
work="${1:-$(mktemp -d)}"
size="${2:-1024}"
runs="${3:-3}"
mkdir -p "$work"
if [ ! -f "$work/big.parquet" ]; then
  "${PYTHON:-python3}" scripts/bench/make_big_parquet.py "$work/big.parquet" "$size" --jsonl "$work/big.jsonl"
fi
go build -o "$work/colrss" scripts/bench/columnar_rss.go
printf '%-8s %12s %12s %10s %8s\n' format file_MB records peak_RSS_MiB seconds
for _ in $(seq "$runs"); do
  for f in big.parquet big.jsonl; do
    /usr/bin/time -f '%M %e' -o "$work/time.out" "$work/colrss" -source_lang en -target_lang ro "$work/$f" >"$work/out.json"
    read -r kb secs <"$work/time.out"
    recs=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["records"])' "$work/out.json")
    printf '%-8s %12d %12s %10d %8s\n' "${f#big.}" $(( $(stat -c %s "$work/$f") >> 20 )) "$recs" $((kb / 1024)) "$secs"
  done
done
