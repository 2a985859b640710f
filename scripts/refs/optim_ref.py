"""References for internal/optim: torch.optim.AdamW / SGD after HF-style
clipping (torch.nn.utils.clip_grad_norm_), and HF's seq2seq loss with and
without label smoothing (transformers' LabelSmoother).

Writes testdata/optim/{adamw,sgd,loss}.json.
Run: .venv/bin/python scripts/refs/optim_ref.py
"""

import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
import fixturelib as fl  # noqa: E402
from transformers.trainer_pt_utils import LabelSmoother  # noqa: E402

OUT = os.path.join(fl.TESTDATA, "optim")
fl.seed_everything(1234)

# Three parameters: a matrix with decay, a bias without, a layer-norm weight without.
SHAPES = {"dense.weight": [4, 3], "dense.bias": [4], "layer_norm.weight": [3]}
DECAY = {"dense.weight": True, "dense.bias": False, "layer_norm.weight": False}
STEPS = 6


def trajectory(make_opt, max_grad_norm, lrs):
    g = torch.Generator().manual_seed(99)
    params = {n: torch.nn.Parameter(torch.randn(*s, generator=g)) for n, s in SHAPES.items()}
    initial = {n: fl.tensor_ref(p.detach().clone()) for n, p in params.items()}
    opt = make_opt(params)
    steps = []
    for k in range(STEPS):
        # Large gradients on some steps so that clipping is active.
        scale = 5.0 if k % 2 == 0 else 0.05
        for n, p in params.items():
            p.grad = torch.randn(*p.shape, generator=g) * scale
        grads = {n: fl.tensor_ref(p.grad.clone()) for n, p in params.items()}
        for group in opt.param_groups:
            group["lr"] = lrs[k]
        if max_grad_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(list(params.values()), max_grad_norm)
        else:
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params.values()]))
        opt.step()
        state = {}
        for n, p in params.items():
            st = opt.state[p]
            state[n] = {k2: fl.tensor_ref(v.clone()) for k2, v in st.items() if k2 != "step"}
        steps.append({
            "lr": lrs[k],
            "grads": grads,
            "grad_norm": fl.f32(norm.detach().clone()),
            "params": {n: fl.tensor_ref(p.detach().clone()) for n, p in params.items()},
            "state": state,
        })
    return initial, steps


def groups(params, wd):
    return [
        {"params": [p for n, p in params.items() if DECAY[n]], "weight_decay": wd},
        {"params": [p for n, p in params.items() if not DECAY[n]], "weight_decay": 0.0},
    ]


lrs = [1e-2, 8e-3, 6e-3, 4e-3, 2e-3, 1e-3]
cases = []
for wd, mgn in [(0.1, 1.0), (0.0, 0.0)]:
    init, steps = trajectory(
        lambda ps: torch.optim.AdamW(groups(ps, wd), lr=lrs[0], betas=(0.9, 0.999), eps=1e-8, foreach=False),
        mgn, lrs)
    cases.append({"weight_decay": wd, "max_grad_norm": mgn, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                  "initial": init, "steps": steps})
fl.write_json(os.path.join(OUT, "adamw.json"), {
    "command": fl.command(), "versions": fl.versions("torch", "transformers"),
    "decay": DECAY, "cases": cases})

cases = []
for wd, mgn, mom in [(0.1, 1.0, 0.9), (0.0, 0.0, 0.0)]:
    init, steps = trajectory(
        lambda ps: torch.optim.SGD(groups(ps, wd), lr=lrs[0], momentum=mom, foreach=False), mgn, lrs)
    cases.append({"weight_decay": wd, "max_grad_norm": mgn, "momentum": mom, "initial": init, "steps": steps})
fl.write_json(os.path.join(OUT, "sgd.json"), {
    "command": fl.command(), "versions": fl.versions("torch", "transformers"),
    "decay": DECAY, "cases": cases})

# Loss: logits [2, 5, 7], labels with -100 padding.
g = torch.Generator().manual_seed(5)
logits = torch.randn(2, 5, 7, generator=g) * 3
labels = torch.tensor([[3, 0, 6, -100, -100], [1, 2, 2, 5, 4]])
cases = []
for eps in [0.0, 0.1]:
    lg = logits.clone().requires_grad_(True)
    if eps == 0:
        loss = torch.nn.functional.cross_entropy(lg.view(-1, 7), labels.view(-1), ignore_index=-100)
    else:
        loss = LabelSmoother(epsilon=eps)({"logits": lg}, labels)
    loss.backward()
    cases.append({"label_smoothing": eps, "loss": fl.f32(loss.detach()), "logits_grad": fl.tensor_ref(lg.grad)})
fl.write_json(os.path.join(OUT, "loss.json"), {
    "command": fl.command(), "versions": fl.versions("torch", "transformers"),
    "logits": fl.tensor_ref(logits), "labels": fl.tensor_ref(labels), "token_count": int((labels != -100).sum()),
    "cases": cases})
