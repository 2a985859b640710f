#!/usr/bin/env python3
"""Checkpoint rotation / best-model references from the real HF Trainer (issue 8).

Each scenario runs a real transformers Trainer (tiny torch model, max_steps
steps, eval/save every few steps, load_best_model_at_end) whose evaluation
returns a scripted metric sequence: `evaluation_loop` is overridden to return
{"eval_loss": L[i], "eval_score": S[i]}, so evaluate(), _determine_best_metric,
_save_checkpoint, rotate_checkpoints, DefaultFlowCallback, EarlyStoppingCallback
and _finalize_training all run unchanged. Recorded per scenario: the steps at
which evaluation and saving happened, the checkpoints on disk after every save
and at the end, best_model_checkpoint (basename), best_metric, best_global_step
and the final global_step.

Values are multiples of 1/64 so they are exact in float32 and float64.

Run: .venv/bin/python scripts/refs/trainer_rotation_refs.py
Writes testdata/trainer/rotation_refs.json.
"""
import json
import os
import random
import sys
import tempfile

import numpy as np
import torch
import transformers
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import EvalLoopOutput

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "trainer", "rotation_refs.json")


class TinyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x=None, labels=None):
        loss = ((self.w * x - labels) ** 2).mean()
        return {"loss": loss}


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, n):
        self.items = [{"x": torch.tensor([float(i % 3)]), "labels": torch.tensor([1.0])} for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class ScriptedTrainer(Trainer):
    def __init__(self, *a, losses=None, scores=None, **kw):
        super().__init__(*a, **kw)
        self._losses, self._scores, self._i = losses, scores, 0

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        i = self._i
        self._i += 1
        metrics = {f"{metric_key_prefix}_loss": self._losses[i], f"{metric_key_prefix}_score": self._scores[i]}
        return EvalLoopOutput(predictions=None, label_ids=None, metrics=metrics, num_samples=2)


class Recorder(TrainerCallback):
    def __init__(self, out_dir):
        self.out_dir, self.saves, self.evals = out_dir, [], []

    def on_evaluate(self, args, state, control, **kw):
        self.evals.append(state.global_step)

    def on_save(self, args, state, control, **kw):
        self.saves.append({"step": state.global_step, "on_disk": checkpoints(self.out_dir),
                           "best_model_checkpoint": base(state.best_model_checkpoint)})


def checkpoints(d):
    return sorted((x for x in os.listdir(d) if x.startswith("checkpoint-")), key=lambda x: int(x.split("-")[1]))


def base(p):
    return None if p is None else os.path.basename(p)


def run(sc):
    rng = random.Random(sc["seed"])
    n_eval = max(sc["max_steps"], 16) + 2
    losses = [rng.randint(32, 128) / 64 for _ in range(n_eval)]
    scores = [rng.randint(0, 40) / 64 for _ in range(n_eval)]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        strategy = sc.get("strategy", "steps")
        kw = dict(output_dir=out, max_steps=sc["max_steps"], per_device_train_batch_size=1,
                  per_device_eval_batch_size=2, learning_rate=1e-3, eval_strategy=strategy,
                  eval_steps=sc["eval_steps"], save_strategy=sc.get("save_strategy", strategy),
                  save_steps=sc["save_steps"], save_total_limit=sc["save_total_limit"],
                  load_best_model_at_end=sc.get("load_best", True), metric_for_best_model=sc["metric"],
                  logging_steps=sc["eval_steps"], logging_strategy=strategy, report_to="none", disable_tqdm=True,
                  use_cpu=True, save_only_model=True, seed=0, eval_delay=sc.get("eval_delay", 0),
                  num_train_epochs=sc.get("epochs", 3), gradient_accumulation_steps=sc.get("ga", 1))
        if sc.get("greater_is_better") is not None:
            kw["greater_is_better"] = sc["greater_is_better"]
        args = TrainingArguments(**kw)
        rec = Recorder(out)
        cbs = [rec]
        if sc.get("patience"):
            cbs.append(EarlyStoppingCallback(sc["patience"], sc.get("threshold", 0.0)))
        tr = ScriptedTrainer(model=TinyModel(), args=args, train_dataset=ListDataset(sc.get("train_rows", 64)),
                             eval_dataset=ListDataset(2), callbacks=cbs, losses=losses, scores=scores)
        tr.train()
        st = tr.state
        return {"scenario": sc, "eval_losses": losses, "eval_scores": scores,
                "eval_steps_seen": rec.evals, "saves": rec.saves, "final_on_disk": checkpoints(out),
                "best_model_checkpoint": base(st.best_model_checkpoint), "best_metric": st.best_metric,
                "best_global_step": st.best_global_step, "global_step": st.global_step,
                "greater_is_better": args.greater_is_better}


def scenarios():
    out = []
    seed = 0
    for limit in [None, 1, 2, 3]:
        for gib, metric in [(True, "score"), (False, "score"), (None, "loss")]:
            for eval_steps, save_steps, max_steps in [(2, 2, 12), (2, 4, 13), (5, 5, 12)]:
                seed += 1
                out.append({"seed": seed, "save_total_limit": limit, "greater_is_better": gib, "metric": metric,
                            "eval_steps": eval_steps, "save_steps": save_steps, "max_steps": max_steps})
    for limit in [None, 1, 2]:
        seed += 1
        out.append({"seed": seed, "save_total_limit": limit, "greater_is_better": True, "metric": "score",
                    "eval_steps": 2, "save_steps": 2, "max_steps": 12, "save_strategy": "best"})
    for patience, threshold in [(1, 0.0), (2, 0.0), (2, 0.05)]:
        for gib, metric in [(True, "score"), (None, "loss")]:
            seed += 1
            out.append({"seed": seed, "save_total_limit": 2, "greater_is_better": gib, "metric": metric,
                        "eval_steps": 1, "save_steps": 1, "max_steps": 16, "patience": patience,
                        "threshold": threshold})
    # epoch strategies (max_steps -1: num_train_epochs over 7 rows, GA 2 ->
    # 4 steps per epoch with a short last window), eval_delay
    for limit in [None, 1, 2]:
        for gib, metric in [(True, "score"), (None, "loss")]:
            seed += 1
            out.append({"seed": seed, "save_total_limit": limit, "greater_is_better": gib, "metric": metric,
                        "eval_steps": 1, "save_steps": 1, "max_steps": -1, "strategy": "epoch", "epochs": 4,
                        "train_rows": 7, "ga": 2, "eval_delay": 2 if limit == 2 else 0})
    seed += 1
    out.append({"seed": seed, "save_total_limit": 2, "greater_is_better": True, "metric": "score",
                "eval_steps": 2, "save_steps": 2, "max_steps": 11, "eval_delay": 5})
    return out


def main():
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    np.random.seed(0)
    results = [run(sc) for sc in scenarios()]
    doc = {"generated_by": "/work/pyenv/bin/python scripts/refs/trainer_rotation_refs.py",
           "versions": {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0],
                        "python": sys.version.split()[0]},
           "scenarios": results}
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
