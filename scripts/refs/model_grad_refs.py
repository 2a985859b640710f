"""Loss and per-parameter gradients of the tiny fixtures on their fixed batch.

For every fixture in testdata/models/ this writes testdata/gradients/<name>.json:
the batch (labels with -100), the HF loss (CrossEntropy mean over labels !=
-100, dropout off), the label-smoothed loss (HF Trainer's LabelSmoother,
epsilon 0.1), and the gradient of the plain loss for every trainable ONNX
initializer of model.onnx, keyed by the ONNX initializer name with the map to
the PyTorch parameter names (tied weights carry the sum over their uses, as in
PyTorch). Frozen initializers (Marian's sinusoidal positions) and buffers are
listed without gradients.

Run: .venv/bin/python scripts/refs/model_grad_refs.py
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures"))

import json

import numpy as np
import torch
from transformers.trainer_pt_utils import LabelSmoother

import fixturelib as fl

NAMES = ["t5-tiny", "t5-v1_1-tiny", "bart-tiny", "marian-tiny"]


def load_batch(name):
    r = json.load(open(os.path.join(fl.MODELS, name, "refs.json")))
    batch = {k: torch.tensor(v["data"], dtype=torch.long).view(v["shape"]) for k, v in r["batch"].items()}
    return r, batch


def param_by_name(model):
    return dict(model.named_parameters(remove_duplicate=False))


def main():
    fl.seed_everything(0)
    for name in NAMES:
        r, batch = load_batch(name)
        model = fl.load_fixture(name)
        model.eval()  # dropout off
        params = param_by_name(model)
        model.zero_grad()
        out = model(**batch, use_cache=False)
        loss = out.loss
        loss.backward()

        n_items = int((batch["labels"] != -100).sum())
        grads, frozen, buffers = {}, [], []
        sq = 0.0
        for init, info in sorted(r["onnx_initializers"].items()):
            if info["kind"] != "parameter":
                buffers.append(init)
                continue
            # Distinct Parameter objects behind this initializer: tied weights
            # are one object, whose .grad already sums every use. (Should an
            # export ever merge equal-content tensors into one initializer,
            # its gradient is the sum of theirs.)
            distinct = []
            for n in info["pytorch"]:
                if n in params and params[n].requires_grad and all(params[n] is not q for q in distinct):
                    distinct.append(params[n])
            if not distinct:
                frozen.append(init)
                continue
            g = sum(q.grad if q.grad is not None else torch.zeros_like(q) for q in distinct)
            sq += float((g.double() ** 2).sum())
            grads[init] = {"pytorch": info["pytorch"], "shape": list(g.shape), "grad": fl.f32(g.detach().numpy()),
                           "distinct_pytorch_parameters": len(distinct),
                           "requires_grad_when_constructed": info["requires_grad"]}
        # every trainable PyTorch parameter must be covered by some initializer
        covered = {n for v in grads.values() for n in v["pytorch"]}
        missing = [n for n, p in params.items() if p.requires_grad and n not in covered]
        if missing:
            raise SystemExit(f"{name}: trainable parameters without an ONNX initializer: {missing}")

        with torch.no_grad():
            smoothed = LabelSmoother(epsilon=0.1)(out, batch["labels"], shift_labels=False)
            logp = torch.log_softmax(out.logits, -1)
            mask = batch["labels"] != -100
            tok = -logp.gather(-1, batch["labels"].clamp(min=0).unsqueeze(-1)).squeeze(-1)
            loss_sum = float((tok * mask).sum())

        doc = {
            "command": fl.command(),
            "versions": fl.versions("torch", "transformers", "numpy"),
            "model": name,
            "fixture": f"testdata/models/{name}",
            "batch": {k: fl.tensor_ref(v) for k, v in batch.items()},
            "loss": {
                "mean": np.float32(float(loss.detach())),
                "sum": np.float32(loss_sum),
                "num_items": n_items,
                "definition": "CrossEntropy over logits[B,T,V] vs labels[B,T], ignore_index -100, mean over non-ignored",
            },
            "label_smoothed_loss": {
                "epsilon": 0.1,
                "value": np.float32(float(smoothed)),
                "definition": "transformers LabelSmoother: (1-eps)*nll + eps*mean_v(-log p_v), both averaged over non-ignored tokens",
            },
            "grad_global_norm": np.float32(sq ** 0.5),
            "note": ("requires_grad follows the model as AutoModelForSeq2SeqLM.from_pretrained returns it (what HF "
                     "Trainer trains). transformers 5.x turns Marian's sinusoidal position tables trainable on "
                     "load although a freshly constructed model has them frozen: see requires_grad_when_constructed. "
                     "A consumer that keeps them frozen skips those two entries."),
            "gradients": grads,
            "frozen_initializers": frozen,
            "buffer_initializers": buffers,
        }
        path = fl.write_json(os.path.join(fl.TESTDATA, "gradients", f"{name}.json"), doc)
        print(f"{name}: loss {float(loss.detach()):.6f} smoothed {float(smoothed):.6f} |g| {sq ** 0.5:.6f} "
              f"{len(grads)} grads, frozen {frozen}, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
