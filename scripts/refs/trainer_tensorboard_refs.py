#!/usr/bin/env python3
"""TensorBoard event-file reference for internal/report (issue 8).

Writes scalars with torch.utils.tensorboard.SummaryWriter.add_scalar (what
HF's TensorBoardCallback calls) at fixed wall times, and stores the file's
bytes (hex) with the inputs, then reads the file back with tensorboard's
EventAccumulator to record what TensorBoard itself sees.

Run: .venv/bin/python scripts/refs/trainer_tensorboard_refs.py
(needs the tensorboard package: pip install tensorboard==2.21.0)
Writes testdata/trainer/tensorboard_refs.json.
"""
import glob
import json
import os
import sys
import tempfile
import time

import tensorboard
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "trainer", "tensorboard_refs.json")

START = 1764230400.25
SCALARS = [
    ("train/loss", 2.6998, 1, START + 1.5),
    ("train/grad_norm", 1.4667017459869385, 1, START + 1.5),
    ("train/learning_rate", 0.0, 1, START + 1.5),
    ("train/epoch", 0.125, 1, START + 1.5),
    ("eval/loss", 2.477889776, 4, START + 3.0),
    ("eval/bleu", 8.1839, 4, START + 3.0),
    ("train/loss", float("nan"), 0, START + 4.0),
    ("train/learning_rate", 3.3333333333333335e-4, 128, START + 5.125),
    ("train/train_loss", 1e-7, 300, START + 6.0),
]


def main():
    with tempfile.TemporaryDirectory() as d:
        real = time.time
        time.time = lambda: START
        try:
            w = SummaryWriter(log_dir=d)
            for tag, v, step, wall in SCALARS:
                w.add_scalar(tag, v, step, walltime=wall)
            w.close()
        finally:
            time.time = real
        path = glob.glob(os.path.join(d, "events.out.tfevents.*"))[0]
        data = open(path, "rb").read()
        acc = EventAccumulator(path)
        acc.Reload()
        seen = {tag: [[e.step, e.value, e.wall_time] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    doc = {
        "generated_by": "/work/pyenv/bin/python scripts/refs/trainer_tensorboard_refs.py",
        "versions": {"tensorboard": tensorboard.__version__, "torch": torch.__version__.split("+")[0],
                     "python": sys.version.split()[0]},
        "start_wall_time": START,
        "scalars": [{"tag": t, "value": v if v == v else "NaN", "step": s, "wall": w} for t, v, s, w in SCALARS],
        "file_hex": data.hex(),
        "event_accumulator": {k: [[s, (v if v == v else "NaN"), w] for s, v, w in vals] for k, vals in sorted(seen.items())},
    }
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
