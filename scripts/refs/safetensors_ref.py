"""Writes testdata/safetensors/reference.safetensors with the python
safetensors package and testdata/safetensors/reference.json describing its
tensors, so the Go reader/writer can be checked for byte compatibility.

Run: .venv/bin/python scripts/refs/safetensors_ref.py
"""

import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
import fixturelib  # noqa: E402

out_dir = os.path.join(fixturelib.TESTDATA, "safetensors")
os.makedirs(out_dir, exist_ok=True)

g = torch.Generator().manual_seed(7)
tensors = {
    "encoder.block.0.layer.0.SelfAttention.q.weight": torch.randn(3, 4, generator=g),
    "encoder.final_layer_norm.weight": torch.randn(5, generator=g),
    "scalar": torch.tensor(2.5),
    "half": torch.tensor([1.0, -2.5, 65504.0, 6.1e-5, 1e-7, 0.0], dtype=torch.float16),
    "bhalf": torch.tensor([1.0, -3.0, 1e30, 0.0078125], dtype=torch.bfloat16),
    "double": torch.tensor([[1.0 / 3.0, -1e300]], dtype=torch.float64),
    "ids": torch.tensor([[0, -100, 2**40]], dtype=torch.int64),
    "i32": torch.tensor([7, -8], dtype=torch.int32),
    "mask": torch.tensor([True, False, True]),
    "empty": torch.zeros(0, 3),
    "quote\"name\\x": torch.tensor([1.0]),
}
path = os.path.join(out_dir, "reference.safetensors")
save_file(tensors, path, metadata={"format": "pt"})

desc = {}
for name, t in tensors.items():
    arr = t.float().numpy() if t.dtype in (torch.float16, torch.bfloat16) else t.numpy()
    entry = {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
    if arr.dtype == np.float32:
        entry["values"] = fixturelib.f32(arr)
    elif arr.dtype == np.float64:
        entry["values"] = [float(x) for x in arr.reshape(-1)]
    else:
        entry["values"] = [int(x) for x in arr.reshape(-1)]
    desc[name] = entry

import safetensors  # noqa: E402

fixturelib.write_json(
    os.path.join(out_dir, "reference.json"),
    {
        "command": fixturelib.command(),
        "versions": fixturelib.versions("torch", "numpy", "safetensors"),
        "metadata": {"format": "pt"},
        "tensors": desc,
    },
)
