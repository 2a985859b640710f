"""Export the tiny T5 fixture in training mode, so the graph keeps its 24
Dropout nodes (an eval-mode export drops them): the input of autodiff's
whole-model dropout test.

Run: /work/pyenv/bin/python testdata/autodiff/make_t5_train_export.py
Writes testdata/autodiff/t5-tiny-train.onnx (torch.onnx.export, TorchScript
exporter, opset 17, training=TrainingMode.TRAINING).
"""

import os
import sys

import torch

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(root, "scripts", "fixtures"))
import fixturelib as fl  # noqa: E402
from make_tiny_models import Forward  # noqa: E402

torch.manual_seed(0)
model = fl.load_fixture("t5-tiny")
model.train()
ids = torch.tensor([[5, 6, 7, 1], [8, 9, 1, 0]])
mask = (ids != 0).long()
dec = torch.tensor([[0, 5, 6, 7], [0, 8, 9, 1]])
names = ["input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask"]
torch.onnx.export(
    Forward(model), (ids, mask, dec, mask), os.path.join(root, "testdata", "autodiff", "t5-tiny-train.onnx"),
    dynamo=False, opset_version=17, training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
    input_names=names, output_names=["logits"], dynamic_axes={k: {0: "batch", 1: "seq"} for k in names})
print("torch", torch.__version__)
