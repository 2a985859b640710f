"""PyTorch's side of the GPU-host check (scripts/bench/gpu_check.sh) on the
t5-small-sized model of scripts/fixtures/make_t5_small.py:

  batch DIR --batch B --src S --tgt T     write DIR/batch.json (the batch
                                          train_step_bench.py makes, any size)
  step DIR --dtype float32|bfloat16       training steps in PyTorch eager on
                                          cuda:0 (AdamW, clipping; bfloat16 as
                                          torch.autocast), as train_step_bench
                                          does on the CPU
  generate DIR --input F --beams N        HF generate() on cuda:0, N beams,
                                          exactly --new-tokens tokens

Each prints one JSON line: times are medians after warm-up, with
torch.cuda.synchronize() before each clock read; memory is torch's peak
allocated and reserved bytes on the device.
"""

import argparse
import json
import os
import statistics
import time

import torch
from transformers import T5ForConditionalGeneration

from train_step_bench import write_batch  # the same batch, any size


def load(d):
    torch.manual_seed(0)
    model = T5ForConditionalGeneration.from_pretrained(d, attn_implementation="eager")
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if isinstance(getattr(m, "dropout", None), float):
            m.dropout = 0.0
    return model.to("cuda")


def memory():
    return {"peak_allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
            "peak_reserved_mib": torch.cuda.max_memory_reserved() / 2**20}


def step(d, dtype, steps, warmup):
    model = load(d)
    model.train()
    raw = json.load(open(os.path.join(d, "batch.json")))
    b = {k: torch.tensor(v["data"], dtype=torch.long).view(v["shape"]).cuda() for k, v in raw.items()}
    from transformers import Trainer

    decay = set(Trainer.get_decay_parameter_names(None, model))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for n, p in named if n in decay], "weight_decay": 0.01},
                             {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}], lr=1e-4)
    torch.cuda.reset_peak_memory_stats()
    times, first = [], None
    for i in range(warmup + steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            loss = model(**b).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        opt.step()
        opt.zero_grad()
        torch.cuda.synchronize()
        if first is None:
            first = float(loss)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    tokens = int((b["labels"] != -100).sum())
    med = statistics.median(times)
    print(json.dumps({"impl": "pytorch-eager-cuda", "dtype": dtype, "torch": torch.__version__, "steps": steps,
                      "step_s_median": med, "step_s": times, "target_tokens_per_step": tokens,
                      "tokens_per_s": tokens / med, "first_loss": first, **memory()}))


def generate(d, path, tokenizer, beams, batch, new_tokens, repeats):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer)
    lines = [l.rstrip("\n") for l in open(path)]
    model = load(d)
    model.eval()
    enc = [tok.encode(l).ids for l in lines]
    torch.cuda.reset_peak_memory_stats()
    runs = []
    for r in range(repeats + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(0, len(enc), batch):
            rows = enc[i:i + batch]
            n = max(len(x) for x in rows)
            ids = torch.tensor([x + [0] * (n - len(x)) for x in rows], device="cuda")
            mask = torch.tensor([[1] * len(x) + [0] * (n - len(x)) for x in rows], device="cuda")
            with torch.no_grad():
                model.generate(input_ids=ids, attention_mask=mask, num_beams=beams, do_sample=False,
                               min_new_tokens=new_tokens, max_new_tokens=new_tokens)
        torch.cuda.synchronize()
        if r:  # the first pass warms up
            runs.append(time.perf_counter() - t0)
    med = statistics.median(runs)
    print(json.dumps({"impl": "hf-generate-cuda", "beams": beams, "batch": batch, "sentences": len(enc),
                      "new_tokens": new_tokens, "seconds": runs, "sentences_per_s": len(enc) / med, **memory()}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["batch", "step", "generate"])
    ap.add_argument("dir")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--src", type=int, default=128)
    ap.add_argument("--tgt", type=int, default=128)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--input")
    ap.add_argument("--tokenizer")
    ap.add_argument("--beams", type=int, default=1)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    if a.mode == "batch":
        write_batch(a.dir, a.batch, a.src, a.tgt)
    elif a.mode == "step":
        step(a.dir, a.dtype, a.steps, a.warmup)
    else:
        generate(a.dir, a.input, a.tokenizer, a.beams, a.batch, a.new_tokens, a.repeats)


if __name__ == "__main__":
    main()
