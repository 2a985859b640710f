"""The HF round trip of ortrain checkpoints: testdata/optimum/roundtrip.json.

Runs the Go test TestOptimumCheckpointsLoadInHF (ortrain/engine) with
ORTRAIN_ROUNDTRIP_OUT set: it trains each Optimum export of
testdata/optimum/<name> (default task, no model.safetensors, so that every
parameter name comes from the graphs) for 3 AdamW steps and writes the
checkpoint (model.safetensors + the folder's config.json and
generation_config.json) and ortrain's logits on the fixed batch of
testdata/gradients/<name>.json. Then it loads each checkpoint with
AutoModelForSeq2SeqLM.from_pretrained (transformers 5.24) and records the
loading info (missing / unexpected keys), the logits on the same batch
(no decoder_attention_mask, as the composed graph and HF's collator have
none) and their largest difference from ortrain's. The Go test compares its
logits with these.

Needs Go and ONNX Runtime (scripts/fetch-onnxruntime.sh) besides the venv of
scripts/requirements.txt:
  .venv/bin/python scripts/refs/hf_roundtrip_refs.py
"""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures"))

import numpy as np
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM

import fixturelib as fl

NAMES = ["t5-tiny", "bart-tiny", "marian-tiny"]


def main():
    fl.seed_everything(0)
    out = {"command": fl.command(), "versions": fl.versions("torch", "transformers", "safetensors", "numpy"), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, ORTRAIN_ROUNDTRIP_OUT=tmp)
        # The reference file may not exist yet: the test then fails after writing.
        subprocess.run(["go", "test", "./ortrain/engine/", "-run", "TestOptimumCheckpointsLoadInHF", "-count=1"], cwd=fl.REPO, env=env,
                       capture_output=True, text=True)
        for name in NAMES:
            ckpt = os.path.join(tmp, name)
            if not os.path.exists(os.path.join(ckpt, "model.safetensors")):
                raise SystemExit(f"the Go test wrote no checkpoint for {name} in {ckpt}")
            with open(os.path.join(fl.TESTDATA, "gradients", name + ".json")) as f:
                batch = json.load(f)["batch"]
            b = {k: torch.tensor(v["data"]).reshape(v["shape"]) for k, v in batch.items()}
            model, info = AutoModelForSeq2SeqLM.from_pretrained(ckpt, attn_implementation="eager", output_loading_info=True)
            model.eval()
            with torch.no_grad():
                logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], decoder_input_ids=b["decoder_input_ids"]).logits
            with open(os.path.join(ckpt, "ortrain_logits.json")) as f:
                mine = json.load(f)
            mine = np.asarray(mine["data"], dtype=np.float32).reshape(mine["shape"])
            diff = float(np.abs(mine - logits.numpy()).max())
            out["models"][name] = {
                "hf_logits": fl.tensor_ref(logits),
                "missing_keys": sorted(info["missing_keys"]),
                "unexpected_keys": sorted(info["unexpected_keys"]),
                "mismatched_keys": sorted(str(k) for k in info.get("mismatched_keys", [])),
                "checkpoint_tensors": sorted(load_file(os.path.join(ckpt, "model.safetensors")).keys()),
                "max_abs_vs_ortrain": diff,
            }
            print(name, "max |ortrain - HF| logits", diff, "missing", info["missing_keys"], "unexpected", info["unexpected_keys"])
    fl.write_json(os.path.join(fl.TESTDATA, "optimum", "roundtrip.json"), out)


if __name__ == "__main__":
    main()
