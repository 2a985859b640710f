"""30-step transformers Adafactor trajectory of the T5 fixture on its fixed batch,
with the optimizer HF's Trainer builds for optim="adafactor":
transformers.optimization.Adafactor(groups, lr=LR, scale_parameter=False,
relative_step=False) (warmup_init False, beta1 None, eps (1e-30, 1e-3),
clip_threshold 1.0, decay_rate -0.8); parameter groups from
Trainer.get_decay_parameter_names (weight_decay on the decay set, 0.0 on the
rest); torch.nn.utils.clip_grad_norm_ before each step (the pre-clip norm is
HF's grad_norm); constant learning rate; dropout off.

Per step: loss, grad_norm, learning rate. At the end every parameter value and
every optimizer state tensor (exp_avg_sq_row / exp_avg_sq_col of matrices,
exp_avg_sq of vectors), keyed by the model's parameter names.

Run: .venv/bin/python scripts/refs/adafactor_refs.py   -> testdata/adafactor/t5-tiny.json
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures"))

import json

import numpy as np
import torch
from transformers import Trainer
from transformers.optimization import Adafactor

import fixturelib as fl

NAME = "t5-tiny"
STEPS = 30
LR = 3e-4
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0


def main():
    fl.seed_everything(0)
    r = json.load(open(os.path.join(fl.MODELS, NAME, "refs.json")))
    batch = {k: torch.tensor(v["data"], dtype=torch.long).view(v["shape"]) for k, v in r["batch"].items()}
    model = fl.load_fixture(NAME)
    model.eval()

    decay = set(Trainer.get_decay_parameter_names(None, model))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if n in decay], "weight_decay": WEIGHT_DECAY},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]
    opt = Adafactor(groups, lr=LR, scale_parameter=False, relative_step=False)

    steps = []
    for step in range(1, STEPS + 1):
        opt.zero_grad()
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        opt.step()
        steps.append({"step": step, "loss": np.float32(float(loss.detach())), "grad_norm": np.float32(float(gn)),
                      "clipped": bool(float(gn) > MAX_GRAD_NORM), "learning_rate": LR})

    final, state = {}, {}
    for n, p in named:
        final[n] = {"shape": list(p.shape), "value": fl.f32(p.detach().numpy())}
        for k, v in opt.state[p].items():
            if torch.is_tensor(v) and v.dim() > 0:
                state[f"{k}.{n}"] = {"shape": list(v.shape), "value": fl.f32(v.numpy())}
    doc = {
        "command": fl.command(),
        "versions": fl.versions("torch", "transformers", "numpy"),
        "model": NAME,
        "batch": f"testdata/models/{NAME}/refs.json batch (labels with -100)",
        "optimizer": {"class": "transformers.optimization.Adafactor", "lr": LR, "scale_parameter": False,
                      "relative_step": False, "warmup_init": False, "weight_decay": WEIGHT_DECAY,
                      "max_grad_norm": MAX_GRAD_NORM, "schedule": "constant"},
        "decay_parameters": sorted(n for n, _ in named if n in decay),
        "steps": steps,
        "final_parameters": final,
        "final_state": state,
    }
    path = fl.write_json(os.path.join(fl.TESTDATA, "adafactor", f"{NAME}.json"), doc)
    print(f"{NAME}: loss {steps[0]['loss']} -> {steps[-1]['loss']}, clipped {sum(s['clipped'] for s in steps)}, "
          f"{os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
