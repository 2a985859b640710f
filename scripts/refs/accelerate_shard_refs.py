#!/usr/bin/env python3
"""How accelerate deals batches to data-parallel processes.

For datasets of several sizes, batch sizes, process counts and drop_last,
writes the example indices each process gets from accelerate's
BatchSamplerShard (split_batches=False, even_batches=True: what HF Trainer's
dataloaders use under DDP) over a sequential BatchSampler, to
testdata/trainer/ddp/shards.json.

Run: python scripts/refs/accelerate_shard_refs.py
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures"))

from accelerate.data_loader import BatchSamplerShard  # noqa: E402
from torch.utils.data import BatchSampler, SequentialSampler  # noqa: E402

import fixturelib as fl  # noqa: E402

cases = []
for n in (1, 3, 7, 8, 20, 23, 60):
    for bs in (1, 3, 4, 6):
        for ranks in (2, 3):
            for drop_last in (False, True):
                sampler = BatchSampler(SequentialSampler(range(n)), bs, drop_last)
                shards = []
                for r in range(ranks):
                    s = BatchSamplerShard(sampler, num_processes=ranks, process_index=r, split_batches=False, even_batches=True)
                    shards.append({"batches": [list(b) for b in s], "len": len(s)})
                cases.append({"n": n, "batch_size": bs, "ranks": ranks, "drop_last": drop_last, "shards": shards})
fl.write_json(os.path.join(fl.TESTDATA, "trainer", "ddp", "shards.json"),
              {"command": fl.command(), "versions": fl.versions("accelerate", "torch"), "cases": cases})
print(len(cases), "cases")
