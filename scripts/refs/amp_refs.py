"""Mixed-precision training references: PyTorch CPU autocast with GradScaler
(float16) and without (bfloat16), on the T5, BART and Marian fixtures.

Each scenario trains a fixture from its model.safetensors on fixed random
micro-batches, the way HF's Trainer does with fp16=True / bf16=True on a GPU
(accelerate: the forward under torch.autocast, scaler.scale(loss).backward()
per micro-batch, scaler.unscale_ then clip_grad_norm_ at each optimizer step,
scaler.step + scaler.update, the LR scheduler stepped only when the
optimizer step was not skipped, grad_norm logged as clip_grad_norm_ returns
it), here with the CPU's autocast op lists (torch.autocast("cpu")) and
torch.amp.GradScaler("cpu"):

- gradient accumulation 2; the micro-batch loss is the model's mean, used
  unscaled (transformers 5.24 passes num_items_in_batch to these models,
  which ignore it: see scripts/README.md), so the logged loss of a step is
  the sum of its two micro-batch means;
- torch.optim.AdamW with HF's decay split, lr 5e-5 (HF's default) linear to 0 without
  warmup, weight decay 0.01, max_grad_norm 1.0; dropout off (eval mode);
- float16: GradScaler(init_scale=2**24, growth_interval=10): the first steps
  overflow and are skipped, then the scale grows every 10 good steps;
- bfloat16: no scaler.

Per step the file holds the logged loss (and, for scale, the same
micro-batches' loss without autocast at the same parameters), grad_norm (null and
grad_norm_nonfinite "inf"/"nan" on an overflow step), the learning rate HF
logs, whether the step was skipped, and the scale used by the step's
backward passes and after scaler.update(). It also records the output dtype
of the aten ops that ortrain's autocast rewrite maps, under
torch.autocast("cpu") for both dtypes, the CUDA op lists of the
installed torch's ATen/autocast_mode.h, and (fixtures) each fixture's loss
on its refs.json batch in float32, under autocast and cast with
model.half(), and t5-tiny's generate() predictions as a float16 model for
testdata/generate/predict/input.txt.

Run: .venv/bin/python scripts/refs/amp_refs.py
"""

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures"))

import json
import math

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Trainer, get_linear_schedule_with_warmup

import fixturelib as fl

NAMES = ("t5-tiny", "bart-tiny", "marian-tiny")
GA = 2
LR = 5e-5
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
BATCH = 4
INIT_SCALE = 2.0 ** 24
GROWTH_INTERVAL = 10
STEPS = {"float16": 30, "bfloat16": 20}


def make_batches(model, n, seed):
    """n micro-batches of BATCH rows: random ids avoiding special tokens,
    right-padded sources and labels of random lengths, decoder inputs as the
    model shifts labels."""
    cfg = model.config
    special = {cfg.pad_token_id, cfg.eos_token_id, cfg.decoder_start_token_id, getattr(cfg, "bos_token_id", None)}
    vocab = [i for i in range(cfg.vocab_size) if i not in special]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        src_lens = rng.integers(3, 12, size=BATCH)
        tgt_lens = rng.integers(2, 10, size=BATCH)
        S, T = int(src_lens.max()) + 1, int(tgt_lens.max()) + 1
        ids = np.full((BATCH, S), cfg.pad_token_id, dtype=np.int64)
        mask = np.zeros((BATCH, S), dtype=np.int64)
        labels = np.full((BATCH, T), -100, dtype=np.int64)
        for r in range(BATCH):
            s = rng.choice(vocab, size=src_lens[r])
            ids[r, :src_lens[r]] = s
            ids[r, src_lens[r]] = cfg.eos_token_id
            mask[r, :src_lens[r] + 1] = 1
            t = rng.choice(vocab, size=tgt_lens[r])
            labels[r, :tgt_lens[r]] = t
            labels[r, tgt_lens[r]] = cfg.eos_token_id
        lab = torch.tensor(labels)
        dec = model.prepare_decoder_input_ids_from_labels(labels=lab)
        out.append({"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
                    "decoder_input_ids": dec, "labels": lab})
    return out


def frozen(model):
    """The parameters HF's optimizer leaves alone (requires_grad False after
    from_pretrained); none in these fixtures: Marian's sinusoidal position
    tables, frozen in a freshly constructed model, are trainable after
    from_pretrained, and both HF and ortrain train them."""
    return [n for n, p in model.named_parameters() if not p.requires_grad]


def train(name, dtype_name):
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[dtype_name]
    steps = STEPS[dtype_name]
    fl.seed_everything(0)
    model = fl.load_fixture(name)
    model.eval()  # dropout off
    frozen_names = frozen(model)
    batches = make_batches(model, steps * GA, seed=1)
    decay = set(Trainer.get_decay_parameter_names(None, model))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if n in decay], "weight_decay": WEIGHT_DECAY},
        {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=LR)
    sched = get_linear_schedule_with_warmup(opt, 0, steps)
    scaler = torch.amp.GradScaler("cpu", init_scale=INIT_SCALE, growth_interval=GROWTH_INTERVAL) if dtype == torch.float16 else None
    log = []
    for step in range(steps):
        tr_loss = torch.tensor(0.0)
        fp32_loss = torch.tensor(0.0)
        with torch.no_grad():  # the same micro-batches without autocast, at the same parameters
            for micro in range(GA):
                fp32_loss += model(**batches[step * GA + micro], use_cache=False).loss
        scale_used = scaler.get_scale() if scaler else None
        for micro in range(GA):
            b = batches[step * GA + micro]
            with torch.autocast("cpu", dtype=dtype):
                loss = model(**b, use_cache=False).loss
            (scaler.scale(loss) if scaler else loss).backward()
            tr_loss += loss.detach()
        if scaler:
            scaler.unscale_(opt)
        gn = float(torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM))
        before = sum(s.get("step", torch.tensor(0)).item() for s in opt.state.values()) if opt.state else 0
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        after = sum(s.get("step", torch.tensor(0)).item() for s in opt.state.values()) if opt.state else 0
        skipped = after == before
        lr = sched.get_last_lr()[0]
        if not skipped:
            sched.step()
        opt.zero_grad()
        entry = {"step": step + 1, "loss": np.float32(float(tr_loss)), "loss_float32": np.float32(float(fp32_loss)),
                 "learning_rate": lr, "skipped": skipped}
        if math.isfinite(gn):
            entry["grad_norm"] = np.float32(gn)
        else:
            entry["grad_norm"] = None
            entry["grad_norm_nonfinite"] = "nan" if math.isnan(gn) else "inf"
        if scaler:
            entry["scale"] = scale_used
            entry["scale_after"] = scaler.get_scale()
        log.append(entry)
        print(name, dtype_name, entry)

    def enc(b):
        return {k: fl.tensor_ref(v) for k, v in b.items()}

    return {
        "model": name,
        "dtype": dtype_name,
        "autocast": 'torch.autocast("cpu", dtype=torch.%s)' % dtype_name,
        "grad_scaler": ({"class": 'torch.amp.GradScaler("cpu")', "init_scale": INIT_SCALE, "growth_factor": 2.0,
                         "backoff_factor": 0.5, "growth_interval": GROWTH_INTERVAL} if scaler else None),
        "gradient_accumulation_steps": GA,
        "optimizer": {"class": "torch.optim.AdamW", "lr": LR, "betas": [0.9, 0.999], "eps": 1e-8,
                      "weight_decay": WEIGHT_DECAY, "max_grad_norm": MAX_GRAD_NORM,
                      "schedule": "get_linear_schedule_with_warmup(0, steps), stepped only after steps that were not skipped"},
        "frozen": frozen_names,
        "loss_rule": "sum of the micro-batch mean losses (transformers 5.24 Trainer with these models: no 1/GA scaling)",
        "batches": [enc(b) for b in batches],
        "steps": log,
    }


# aten ops that ortrain's rewrite maps from ONNX operators, run once under
# CPU autocast to record the dtype each returns for a low-precision input.
def cpu_op_dtypes(dtype):
    x = torch.randn(4, 8)
    w = torch.randn(8, 8)
    with torch.autocast("cpu", dtype=dtype):
        h = F.linear(x, w)  # low
        ops = {
            "linear": F.linear(x, w, torch.randn(8)),
            "matmul": x @ w,
            "bmm": torch.bmm(x[None], w[None]),
            "einsum": torch.einsum("ij,jk->ik", x, w),
            "softmax": F.softmax(h, -1),
            "log_softmax": F.log_softmax(h, -1),
            "layer_norm(low x, float32 weight)": F.layer_norm(h, (8,), torch.ones(8), torch.zeros(8)),
            "pow": h.pow(2),
            "exp": h.exp(),
            "log": h.abs().log(),
            "rsqrt": h.abs().rsqrt(),
            "sum": h.sum(-1),
            "mean": h.mean(-1),
            "cumsum": h.cumsum(-1),
            "prod": h.prod(-1),
            "gelu": F.gelu(h),
            "silu": F.silu(h),
            "relu": F.relu(h),
            "tanh": h.tanh(),
            "cross_entropy": F.cross_entropy(h, torch.tensor([1, 2, 3, 4])),
            "nll_loss": F.nll_loss(h, torch.tensor([1, 2, 3, 4])),
            "add(low, float32 tensor)": h + x,
            "add(low, float32 0-dim tensor)": h + torch.tensor(2.0),
            "mul(low, python scalar)": h * 0.5,
            "cat(low, float32)": torch.cat([h, x]),
            "where(low, float32)": torch.where(h > 0, h, x),
        }
    return {k: str(v.dtype).replace("torch.", "") for k, v in ops.items()}


def cuda_lists():
    """The CUDA op lists of the installed torch's ATen/autocast_mode.h."""
    header = os.path.join(os.path.dirname(torch.__file__), "include", "ATen", "autocast_mode.h")
    text = open(header).read()
    out = {}
    for macro in ("AT_FORALL_LOWER_PRECISION_FP", "AT_FORALL_FP32", "AT_FORALL_FP32_SET_OPT_DTYPE", "AT_FORALL_PROMOTE"):
        m = re.search(r"#define %s\(_\)(.*?)(?:\n\n|\n#)" % macro, text, re.S)
        out[macro] = sorted(set(re.findall(r"_\((\w+)", m.group(1))))
    return out


def half_model_refs():
    """Each fixture's loss on its refs.json batch in float32, under CPU
    autocast (float16, bfloat16) and with model.half() on the CPU (HF's
    fp16_full_eval, no autocast); and t5-tiny's generate() predictions for
    testdata/generate/predict/input.txt (greedy and 4 beams, batches of 4)."""
    from transformers import PreTrainedTokenizerFast

    out = {"losses": {}, "predict": {}}
    for name in NAMES:
        fl.seed_everything(0)
        r = json.load(open(os.path.join(fl.MODELS, name, "refs.json")))
        batch = {k: torch.tensor(v["data"], dtype=torch.long).view(v["shape"]) for k, v in r["batch"].items()}
        model = fl.load_fixture(name)
        entry = {}
        with torch.no_grad():
            entry["float32"] = float(model(**batch, use_cache=False).loss)
            for dt in ("float16", "bfloat16"):
                with torch.autocast("cpu", dtype=getattr(torch, dt)):
                    entry["autocast_" + dt] = float(model(**batch, use_cache=False).loss)
            model.half()
            l16 = model(**batch, use_cache=False).loss
        entry["half_float16"], entry["half_loss_dtype"] = float(l16), str(l16.dtype).replace("torch.", "")
        out["losses"][name] = entry
    pred_dir = os.path.join(fl.TESTDATA, "generate", "predict")
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(pred_dir, "tokenizer.json"), pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    lines = open(os.path.join(pred_dir, "input.txt")).read().splitlines()
    model = fl.load_fixture("t5-tiny").half()
    for setting, kwargs in (("greedy", {}), ("beam4", {"num_beams": 4})):
        preds = []
        for start in range(0, len(lines), 4):
            enc = tok(lines[start:start + 4], padding=True, return_tensors="pt")
            with torch.no_grad():
                ids = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **kwargs)
            preds += tok.batch_decode(ids, skip_special_tokens=True)
        out["predict"][setting] = {"kwargs": kwargs, "batch_size": 4, "predictions": preds}
    return out


def main():
    doc = {
        "command": fl.command(),
        "versions": fl.versions("torch", "transformers", "numpy"),
        "cpu_autocast_output_dtypes": {"float16": cpu_op_dtypes(torch.float16), "bfloat16": cpu_op_dtypes(torch.bfloat16)},
        "cuda_autocast_lists": cuda_lists(),
        "fixtures": half_model_refs(),
    }
    fl.write_json(os.path.join(fl.TESTDATA, "amp", "autocast_ops.json"), doc)
    for dtype in ("float16", "bfloat16"):
        for name in NAMES:
            ref = train(name, dtype)
            ref["command"] = fl.command()
            ref["versions"] = doc["versions"]
            path = fl.write_json(os.path.join(fl.TESTDATA, "amp", f"{name}-{dtype}.json"), ref)
            print(path, os.path.getsize(path))


if __name__ == "__main__":
    main()
