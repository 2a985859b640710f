#!/usr/bin/env python3
"""Reference values for the ortrain trainer package (issue 8).

Writes testdata/trainer/basic_refs.json:
  - pyjson: floats and a nested object as Python's json.dumps(indent=2, sort_keys=True) writes them
  - schedules: learning rates from transformers.get_scheduler for every supported type, read the way
    Trainer reads them (lr_scheduler.get_last_lr()[0] after optimizer.step(), before scheduler.step())
  - warmup: TrainingArguments.get_warmup_steps for several warmup_steps values
  - compute_steps: TrainerState.compute_steps for ratio step arguments
  - validation: the ValueError messages TrainingArguments raises for bad combinations

Run: .venv/bin/python scripts/refs/trainer_basic_refs.py
"""
import json
import math
import os
import random
import sys

import torch
import transformers
from transformers import TrainingArguments
from transformers.optimization import get_scheduler
from transformers.trainer_callback import TrainerState

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "trainer", "basic_refs.json")


def pyjson_cases():
    rng = random.Random(0)
    floats = [0.0, -0.0, 1.0, 2.0, 0.5, 0.1, 1e-4, 1e-5, 5e-05, 1.2345e-7, 123456789.0, 1e15, 1e16, 1e17,
              3.14159, -2.5e-6, 0.30000000000000004, 12.0, 1234567890123456.0, 12345678901234567.0,
              float("nan"), float("inf"), float("-inf")]
    for _ in range(40):
        floats.append(rng.uniform(-1, 1) * 10 ** rng.randint(-12, 20))
    obj = {"b": [1, 2.0, "x\u00e9\n\"", None, True], "a": {"z": 1e-5, "y": []}, "c": {}, "d": "tab\there\x7f"}
    return {
        "floats": [[repr(f) if math.isfinite(f) else str(f), f.hex()] for f in floats],
        "object": obj,
        "object_indent2": json.dumps(obj, indent=2, sort_keys=True) + "\n",
        "object_indent4": json.dumps(obj, indent=4, sort_keys=True),
    }


def schedule_cases():
    cases = []
    specs = [
        ("linear", 0, 10, None), ("linear", 3, 10, None), ("linear", 0.25, 17, None), ("linear", 12, 10, None),
        ("cosine", 0, 13, None), ("cosine", 4, 13, None), ("cosine", 2, 9, {"num_cycles": 1.5}),
        ("constant", 0, 6, None), ("constant", 3, 6, None),
        ("constant_with_warmup", 4, 9, None), ("constant_with_warmup", 0.5, 9, None),
        ("polynomial", 3, 12, None), ("polynomial", 2, 12, {"lr_end": 1e-5, "power": 2.0}),
        ("inverse_sqrt", 0, 12, None), ("inverse_sqrt", 4, 12, None), ("inverse_sqrt", 3, 12, {"timescale": 7}),
    ]
    for name, warmup, total, kwargs in specs:
        lr = 3e-4
        args = TrainingArguments(output_dir="/tmp/unused", warmup_steps=warmup, learning_rate=lr,
                                 lr_scheduler_type=name, report_to="none")
        n_warm = args.get_warmup_steps(total)
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.AdamW([p], lr=lr)
        sched = get_scheduler(name, opt, num_warmup_steps=n_warm, num_training_steps=total,
                              scheduler_specific_kwargs=kwargs)
        lrs = []
        for _ in range(total + 2):
            opt.step()
            lrs.append(sched.get_last_lr()[0])
            sched.step()
        cases.append({"type": name, "warmup_steps": warmup, "num_warmup_steps": n_warm, "total": total,
                      "kwargs": kwargs or {}, "learning_rate": lr, "lrs": lrs})
    return cases


def compute_steps_cases():
    out = []
    for (ls, es, ss, max_steps) in [(0.1, 0.25, 0.5, 37), (5, None, 0.3, 20), (0.05, 0.05, 10, 7), (1, 1, 1, 3)]:
        kw = dict(output_dir="/tmp/unused", logging_steps=ls, save_steps=ss, report_to="none")
        if es is not None:
            kw.update(eval_strategy="steps", eval_steps=es)
        args = TrainingArguments(**kw)
        st = TrainerState()
        st.compute_steps(args, max_steps)
        out.append({"logging_steps": ls, "eval_steps": es, "save_steps": ss, "max_steps": max_steps,
                    "state": [st.logging_steps, st.eval_steps, st.save_steps]})
    return out


def validation_cases():
    cases = [
        {"eval_strategy": "steps", "eval_steps": None, "logging_steps": 0},
        {"logging_strategy": "steps", "logging_steps": 0},
        {"logging_steps": 2.5},
        {"eval_strategy": "steps", "eval_steps": 2.5},
        {"save_steps": 7.5},
        {"load_best_model_at_end": True, "eval_strategy": "epoch", "save_strategy": "steps"},
        {"load_best_model_at_end": True, "eval_strategy": "steps", "save_strategy": "steps", "eval_steps": 3,
         "save_steps": 10},
        {"load_best_model_at_end": True, "eval_strategy": "steps", "save_strategy": "steps", "eval_steps": 0.1,
         "save_steps": 10},
        {"load_best_model_at_end": True, "eval_strategy": "steps", "save_strategy": "steps", "eval_steps": 0.2,
         "save_steps": 0.3},
        {"load_best_model_at_end": True, "eval_strategy": "steps", "save_strategy": "steps", "eval_steps": 0.1,
         "save_steps": 0.3},
        {"load_best_model_at_end": True, "eval_strategy": "no", "save_strategy": "best"},
        {"warmup_steps": -1},
        {"load_best_model_at_end": True, "eval_strategy": "steps", "save_strategy": "steps", "eval_steps": 5,
         "save_steps": 10},
        {"load_best_model_at_end": True, "eval_strategy": "steps", "save_strategy": "steps", "eval_steps": 5,
         "save_steps": 10, "metric_for_best_model": "bleu"},
        {"eval_strategy": "steps", "logging_steps": 7},
    ]
    out = []
    for c in cases:
        try:
            a = TrainingArguments(output_dir="/tmp/unused", report_to="none", **c)
            out.append({"args": c, "error": None,
                        "resolved": {"eval_steps": a.eval_steps, "metric_for_best_model": a.metric_for_best_model,
                                     "greater_is_better": a.greater_is_better, "do_eval": a.do_eval,
                                     "logging_steps": a.logging_steps, "save_steps": a.save_steps}})
        except ValueError as e:
            out.append({"args": c, "error": str(e)})
    return out


def console_cases():
    """ProgressCallback.on_log lines and Trainer.log_metrics blocks, captured from transformers itself."""
    import contextlib
    import io

    from transformers.trainer_callback import ProgressCallback, TrainerControl
    from transformers.trainer_pt_utils import log_metrics

    class Bar:
        def __init__(self):
            self.lines = []

        def write(self, s):
            self.lines.append(s)

    logs = [
        {"loss": 2.699812650680542, "grad_norm": 1.4667017459869385, "learning_rate": 0.0, "epoch": 0.125},
        {"loss": 11.229694366455078, "grad_norm": 4.751816272735596, "learning_rate": 3.3333333333333335e-05,
         "epoch": 0.26666666666666666},
        {"eval_loss": 2.477889776, "eval_bleu": 8.1839, "eval_gen_len": 9.9, "eval_runtime": 0.0123,
         "eval_samples_per_second": 1626.016, "eval_steps_per_second": 325.203, "epoch": 1.0},
        {"train_runtime": 12.3456, "train_samples_per_second": 9.72, "train_steps_per_second": 1.296,
         "total_flos": 375072768.0, "train_loss": 2.591416522860527, "epoch": 2.0},
        {"loss": float("nan"), "learning_rate": 1234567.0, "epoch": 1e-05},
    ]
    cb = ProgressCallback()
    cb.training_bar = Bar()
    state = TrainerState()
    lines = []
    for lg in logs:
        cb.on_log(None, state, TrainerControl(), logs=dict(lg))
    lines = cb.training_bar.lines

    class Fake:
        def is_world_process_zero(self):
            return True

    blocks = []
    for split, m in [("train", {"epoch": 2.0, "total_flos": 375072768.0, "train_loss": 2.591416522860527,
                                "train_runtime": 3723.4567, "train_samples_per_second": 9.72,
                                "train_steps_per_second": 1.296, "train_samples": 60}),
                     ("eval", {"epoch": 2.0, "eval_bleu": 8.1839, "eval_loss": 2.4653942584991455,
                               "eval_runtime": 0.5, "eval_samples": 20})]:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            log_metrics(Fake(), split, m)
        blocks.append({"split": split, "metrics": [[k, v] for k, v in m.items()], "text": buf.getvalue()})
    return {"logs": [[[k, (v if v == v else "NaN")] for k, v in lg.items()] for lg in logs],
            "progress_lines": lines, "log_metrics": blocks}


def main():
    doc = {
        "generated_by": "/work/pyenv/bin/python scripts/refs/trainer_basic_refs.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0],
                     "python": sys.version.split()[0]},
        "pyjson": pyjson_cases(),
        "schedules": schedule_cases(),
        "compute_steps": compute_steps_cases(),
        "validation": validation_cases(),
        "console": console_cases(),
    }
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
