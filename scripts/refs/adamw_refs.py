"""50-step torch.optim.AdamW trajectories of the tiny fixtures on their fixed batch.

HF Trainer's optimizer set-up, reproduced with HF's own helpers: parameters
from Trainer.get_decay_parameter_names get weight_decay, the rest (biases,
LayerNorm / RMSNorm weights) get 0.0; torch.optim.AdamW (betas, eps default);
global-norm clipping at max_grad_norm with torch.nn.utils.clip_grad_norm_ (the
pre-clip norm is what HF logs as grad_norm); constant learning rate; dropout
off. Per step the file holds loss, grad_norm (pre-clip), whether clipping was
active, the learning rate and the L2 norm of all parameters after the step;
at the end, for t5-tiny every parameter value, and for the other fixtures
(files kept small) each parameter's L2 norm and first 4 values, keyed by
ONNX initializer name.

Run: .venv/bin/python scripts/refs/adamw_refs.py
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures"))

import json

import numpy as np
import torch
from transformers import Trainer

import fixturelib as fl

FULL = ("t5-tiny",)
NAMES = ("t5-tiny", "t5-v1_1-tiny", "bart-tiny", "marian-tiny")
STEPS = 50
LR = 1e-3
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0


def trajectory(NAME):
    fl.seed_everything(0)
    r = json.load(open(os.path.join(fl.MODELS, NAME, "refs.json")))
    batch = {k: torch.tensor(v["data"], dtype=torch.long).view(v["shape"]) for k, v in r["batch"].items()}
    model = fl.load_fixture(NAME)
    model.eval()  # dropout off for the whole trajectory

    decay = set(Trainer.get_decay_parameter_names(None, model))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if n in decay], "weight_decay": WEIGHT_DECAY},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=LR)

    steps = []
    for step in range(1, STEPS + 1):
        opt.zero_grad()
        loss = model(**batch, use_cache=False).loss
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        opt.step()
        with torch.no_grad():
            pn = torch.sqrt(sum((p.double() ** 2).sum() for _, p in named))
        steps.append({
            "step": step,
            "loss": np.float32(float(loss.detach())),
            "grad_norm": np.float32(float(gn)),
            "clipped": bool(float(gn) > MAX_GRAD_NORM),
            "learning_rate": LR,
            "param_norm_after": np.float32(float(pn)),
        })

    params = dict(model.named_parameters(remove_duplicate=False))
    final = {}
    for init, info in sorted(r["onnx_initializers"].items()):
        if info["kind"] == "parameter":
            a = params[init].detach().numpy()
            entry = {"pytorch": info["pytorch"], "shape": list(a.shape)}
            if NAME in FULL:
                entry["value"] = fl.f32(a)
            else:
                entry["l2"] = float(np.sqrt((a.astype(np.float64) ** 2).sum()))
                entry["first4"] = fl.f32(a.reshape(-1)[:4])
            final[init] = entry
    doc = {
        "command": fl.command(),
        "versions": fl.versions("torch", "transformers", "numpy"),
        "model": NAME,
        "fixture": f"testdata/models/{NAME} (initial parameters = its model.safetensors)",
        "batch": "testdata/models/%s/refs.json batch (labels with -100)" % NAME,
        "optimizer": {
            "class": "torch.optim.AdamW", "lr": LR, "betas": [0.9, 0.999], "eps": 1e-8,
            "weight_decay": WEIGHT_DECAY, "max_grad_norm": MAX_GRAD_NORM, "schedule": "constant",
            "fused": False, "foreach": "torch default",
        },
        "decay_parameters": sorted(n for n, _ in named if n in decay),
        "no_decay_parameters": sorted(n for n, _ in named if n not in decay),
        "decay_rule": "transformers Trainer.get_decay_parameter_names (patterns bias, layernorm, rmsnorm, norm, _norm; nn.LayerNorm)",
        "loss": "model(**batch).loss: CrossEntropy mean over labels != -100",
        "steps": steps,
        "final_parameters": final,
        "final_parameters_form": "value (all)" if NAME in FULL else "l2 (float64 of the float32 values) and first4",
        "trainable_note": "requires_grad as from_pretrained returns the model (Marian: position tables trainable, see gradients/marian-tiny.json)",
    }
    path = fl.write_json(os.path.join(fl.TESTDATA, "adamw", f"{NAME}.json"), doc)
    print(f"{NAME}: loss {steps[0]['loss']} -> {steps[-1]['loss']}, clipped steps "
          f"{sum(s['clipped'] for s in steps)}, {os.path.getsize(path)} bytes")


def main():
    for name in NAMES:
        trajectory(name)


if __name__ == "__main__":
    main()
