"""Training-step benchmark helper: the PyTorch side and the model export.

  export DIR   make a t5-small-sized T5 with random weights in DIR with
               scripts/fixtures/make_t5_small.py (d_model 512, 6+6 layers,
               8 heads, d_ff 2048, vocab 32128; forward graph checked against
               PyTorch) and write a fixed random batch to DIR/batch.json.
  torch DIR    run PyTorch eager training steps (forward, loss, backward,
               clip_grad_norm_, AdamW) on that batch; print JSON timings.
               --lora R: train PEFT LoRA adapters of rank R (lora_alpha 2R,
               target_modules q,v) instead, as get_peft_model does (needs peft).

Run through scripts/bench/train_step_bench.sh, which also runs ortrain and
compares. Needs .venv (torch, transformers, onnx).
"""

import argparse
import json
import os
import statistics
import time

import torch
from transformers import T5Config, T5ForConditionalGeneration


def export(d, batch, src, tgt):
    """The model comes from scripts/fixtures/make_t5_small.py (same export as
    the tiny fixtures, checked against PyTorch); this adds the batch."""
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, os.path.join(root, "scripts", "fixtures", "make_t5_small.py"), "--out", d, "--check"],
                   check=True)
    write_batch(d, batch, src, tgt)


def write_batch(d, batch, src, tgt):
    """batch.json: random ids of the model's vocabulary (seed 1), labels
    shifted right into the decoder inputs as T5 does."""
    vocab = T5Config.from_pretrained(d).vocab_size
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, vocab, (batch, src), generator=g)
    labels = torch.randint(2, vocab, (batch, tgt), generator=g)
    dec = torch.cat([torch.zeros(batch, 1, dtype=torch.long), labels[:, :-1]], 1)
    b = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "decoder_input_ids": dec,
         "decoder_attention_mask": torch.ones_like(dec), "labels": labels}
    json.dump({k: {"shape": list(v.shape), "data": v.reshape(-1).tolist()} for k, v in b.items()},
              open(os.path.join(d, "batch.json"), "w"))


def bench_torch(d, steps, warmup, threads, lora_r=0, checkpointing=False):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = T5ForConditionalGeneration.from_pretrained(d, attn_implementation="eager")
    model.config.dropout_rate = 0.0
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        if isinstance(getattr(m, "dropout", None), float):
            m.dropout = 0.0  # T5Attention's functional attention dropout (see scripts/README.md quirks)
    if lora_r:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0, target_modules=["q", "v"],
                                                 task_type="SEQ_2_SEQ_LM"))
    if checkpointing:
        # what Trainer does for activation_checkpointing (gradient_checkpointing) in transformers 5
        model.activation_checkpointing_enable()
    model.train()
    raw = json.load(open(os.path.join(d, "batch.json")))
    b = {k: torch.tensor(v["data"], dtype=torch.long).view(v["shape"]) for k, v in raw.items()}
    from transformers import Trainer

    decay = set(Trainer.get_decay_parameter_names(None, model))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for n, p in named if n in decay], "weight_decay": 0.01},
                             {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}], lr=1e-4)
    rss_load = proc_status_mib("VmRSS")  # model, batch and optimizer made; no gradient or moment yet
    times = []
    first = None
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = model(**b).loss
        if first is None:
            first = float(loss)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], 1.0)
        opt.step()
        opt.zero_grad()
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    tokens = int((b["labels"] != -100).sum())
    med = statistics.median(times)
    trainable = sum(p.numel() for _, p in named)
    print(json.dumps({"impl": "pytorch-eager" + (f"-peft-lora-r{lora_r}" if lora_r else "") + ("-checkpointing" if checkpointing else ""), "trainable_params": trainable, "torch": torch.__version__, "threads": threads, "steps": steps,
                      "step_s_median": med, "step_s": times, "target_tokens_per_step": tokens,
                      "tokens_per_s": tokens / med, "first_loss": first, "final_loss": float(loss),
                      "rss_after_load_mib": rss_load, "peak_rss_mib": proc_status_mib("VmHWM")}))


def proc_status_mib(field):
    """A size field of /proc/self/status (VmRSS, VmHWM) in MiB."""
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["export", "torch"])
    ap.add_argument("dir")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--src", type=int, default=64)
    ap.add_argument("--tgt", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lora", type=int, default=0, metavar="R")
    ap.add_argument("--checkpointing", action="store_true", help="activation (gradient) checkpointing as HF's Trainer enables it")
    a = ap.parse_args()
    if a.mode == "export":
        export(a.dir, a.batch, a.src, a.tgt)
    else:
        bench_torch(a.dir, a.steps, a.warmup, a.threads, a.lora, a.checkpointing)


if __name__ == "__main__":
    main()
