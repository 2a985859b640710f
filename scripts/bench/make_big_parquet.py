"""Writes a Parquet file of translation records {"translation": {"en", "ro"}}
of at least SIZE_MB megabytes (pyarrow defaults: snappy, dictionary pages,
row groups of 100k rows), and the same records as JSONL when --jsonl is
given, for scripts/bench/columnar_rss.sh. Each record joins three random
Tatoeba sentence pairs (testdata/realdata) and a counter, so that the text
does not compress away.

  python scripts/bench/make_big_parquet.py OUT.parquet SIZE_MB [--jsonl OUT.jsonl]
"""

import argparse
import json
import os
import random

import pyarrow as pa
import pyarrow.parquet as pq

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("size_mb", type=int)
    ap.add_argument("--jsonl")
    args = ap.parse_args()
    d = os.path.join(REPO, "testdata", "realdata", "translation", "tatoeba-en-ro")
    en = open(os.path.join(d, "train.en"), encoding="utf-8").read().split("\n")[:-1]
    ro = open(os.path.join(d, "train.ro"), encoding="utf-8").read().split("\n")[:-1]
    rng = random.Random(0)
    st = pa.struct([("en", pa.string()), ("ro", pa.string())])
    schema = pa.schema([("translation", st)])
    jf = open(args.jsonl, "w", encoding="utf-8") if args.jsonl else None
    n = 0
    with pq.ParquetWriter(args.out, schema) as w:
        while True:
            rows = []
            for _ in range(100_000):
                ix = [rng.randrange(len(en)) for _ in range(3)]
                rows.append({"en": f"{n}. " + " ".join(en[i] for i in ix), "ro": f"{n}. " + " ".join(ro[i] for i in ix)})
                n += 1
            w.write_table(pa.table({"translation": pa.array(rows, type=st)}), row_group_size=100_000)
            if jf:
                for r in rows:
                    jf.write(json.dumps({"translation": r}, ensure_ascii=False) + "\n")
            if os.path.getsize(args.out) >= args.size_mb << 20:
                break
    if jf:
        jf.close()
    print(json.dumps({"rows": n, "parquet_bytes": os.path.getsize(args.out),
                      "jsonl_bytes": os.path.getsize(args.jsonl) if args.jsonl else None}))


if __name__ == "__main__":
    main()
