"""Check that a checkpoint written by ortrain loads in ONNX Runtime's training
API (onnxruntime-training 1.19.2) with the same parameter values, optimizer
state and properties as a reference checkpoint.

Usage (in a venv with scripts/requirements-ort-training.txt installed):
    python scripts/check_ort_checkpoint.py WRITTEN REFERENCE [ARTIFACTS BATCH_JSON]

With ARTIFACTS (the generate_artifacts folder) and BATCH_JSON (a fixture's
refs.json with a "batch"), both checkpoints also take one training step and
one AdamW step in ONNX Runtime; equal parameters afterwards show that the
optimizer moments and step were carried over too.

WRITTEN is loaded with onnxruntime.training.api.CheckpointState.load_checkpoint;
REFERENCE is a checkpoint written by ONNX Runtime itself (or by ortrain from
known values). Exits 0 and prints a summary when every parameter is equal.
"""
import importlib.util
import os
import sys
import types

import numpy as np


def import_checkpoint_state():
    """onnxruntime/training/__init__.py imports torch through .optim; the
    training API does not need it, so register the package without running
    its __init__."""
    spec = importlib.util.find_spec("onnxruntime")
    pkg = types.ModuleType("onnxruntime.training")
    pkg.__path__ = [os.path.join(os.path.dirname(spec.origin), "training")]
    sys.modules["onnxruntime.training"] = pkg
    from onnxruntime.training.api import CheckpointState, Module, Optimizer  # noqa: E402

    return CheckpointState, Module, Optimizer


CheckpointState, Module, Optimizer = import_checkpoint_state()


def step_once(ckpt, artifacts, feeds):
    """One train step and one optimizer step from ckpt; returns the parameters."""
    state = CheckpointState.load_checkpoint(ckpt)
    module = Module(os.path.join(artifacts, "training_model.onnx"), state,
                    os.path.join(artifacts, "eval_model.onnx"), device="cpu")
    module.train()
    module(*feeds)
    opt = Optimizer(os.path.join(artifacts, "optimizer_model.onnx"), module)
    opt.set_learning_rate(1e-3)
    opt.step()
    return params(state)


def params(state):
    out = {}
    for item in state.parameters:
        name = item if isinstance(item, str) else item[0]
        out[name] = state.parameters[name].data.copy()
    return out


def main():
    written, reference = sys.argv[1], sys.argv[2]
    a = CheckpointState.load_checkpoint(written)
    b = CheckpointState.load_checkpoint(reference)
    pa, pb = params(a), params(b)
    if sorted(pa) != sorted(pb):
        print("parameter names differ:", sorted(set(pa) ^ set(pb)))
        return 1
    worst = 0.0
    for name in sorted(pa):
        if pa[name].shape != pb[name].shape or pa[name].dtype != pb[name].dtype:
            print(f"{name}: {pa[name].shape}/{pa[name].dtype} vs {pb[name].shape}/{pb[name].dtype}")
            return 1
        worst = max(worst, float(np.max(np.abs(pa[name].astype(np.float64) - pb[name].astype(np.float64)))) if pa[name].size else 0.0)
    trainable = sum(1 for name in pa if a.parameters[name].requires_grad)
    props = {}
    for item in a.properties:
        if isinstance(item, tuple):
            props[item[0]] = item[1]
        else:
            props[item] = a.properties[item]
    print(f"loaded {written}: {len(pa)} parameters ({trainable} trainable), max |difference| vs {reference} = {worst}")
    print(f"properties: {props}")
    if worst != 0.0:
        return 1
    if len(sys.argv) > 4:
        import json
        b = json.load(open(sys.argv[4]))["batch"]
        feeds = [np.array(b[k]["data"], np.int64).reshape(b[k]["shape"])
                 for k in ("input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask", "labels")]
        sa, sb = step_once(written, sys.argv[3], feeds), step_once(reference, sys.argv[3], feeds)
        after = max(float(np.max(np.abs(sa[n].astype(np.float64) - sb[n].astype(np.float64)))) for n in sa)
        print(f"after one training and one AdamW step in ONNX Runtime: max |difference| = {after}")
        return 0 if after == 0.0 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
