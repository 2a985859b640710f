"""PyTorch and HF references for the per-architecture fixtures in
testdata/arch/<model_type>/ (made by scripts/fixtures/make_arch_models.py).

Each model is loaded as a user fine-tunes it, with
AutoModelForSeq2SeqLM.from_pretrained(folder) (so that, for example,
Marian's and Pegasus's sinusoidal position tables are trainable, as
transformers 5.24 makes them), with every dropout at 0 (nn.Dropout modules
and the float rates attention modules keep) and LayerDrop at 0, and writes
beside the model:

  grads.safetensors  the gradient of the loss of a fixed batch (3 rows,
                     unequal lengths, labels padded with -100, decoder
                     inputs as HF's DataCollatorForSeq2Seq makes them, no
                     decoder_attention_mask) for every parameter HF's
                     optimizer updates (requires_grad after from_pretrained),
                     under the parameter's first name
  refs.json          that batch, its loss, the global gradient norm, the
                     names (and tied aliases) of the trained parameters and
                     of the state-dict tensors HF does not train; a
                     Seq2SeqTrainer run with gradient accumulation 2
                     (log_history; copy-task data of 24 training and 8
                     evaluation rows, sequential order, logging every step,
                     evaluation every 3 steps); HF generate() on two source
                     batches with greedy and beam options (sequences)

Run after make_arch_models.py: .venv/bin/python scripts/refs/arch_refs.py [model_type ...]
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fixtures"))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np
import torch

import fixturelib as fl

ROOT = os.path.join(fl.TESTDATA, "arch")
CONTENT_END = 48
DROPOUT_ATTRS = ("dropout", "dropout_rate", "attention_dropout", "activation_dropout")

TRAINER_ARGS = dict(
    per_device_train_batch_size=4, per_device_eval_batch_size=4, gradient_accumulation_steps=2,
    num_train_epochs=2, learning_rate=1e-3, lr_scheduler_type="linear", warmup_steps=1, weight_decay=0.01,
    max_grad_norm=1.0, logging_steps=1, eval_strategy="steps", eval_steps=3, save_strategy="no", seed=42,
    use_cpu=True, dataloader_num_workers=0, remove_unused_columns=False, train_sampling_strategy="sequential",
    report_to="none", disable_tqdm=True,
)

GENERATION = [
    ("greedy", {}),
    ("greedy_max_new_tokens6", {"max_new_tokens": 6}),
    ("beam4", {"num_beams": 4}),
    ("beam3_nrs2", {"num_beams": 3, "num_return_sequences": 2}),
]


def load(mt):
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(os.path.join(ROOT, mt), attn_implementation="eager")
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        for obj in (m, getattr(m, "config", None)):
            for attr in DROPOUT_ATTRS:
                if isinstance(getattr(obj, attr, None), float):
                    setattr(obj, attr, 0.0)
            # LayerDrop (M2M100 and NLLB-MoE configs set 0.05) skips whole
            # layers at random in training
            for attr in list(vars(obj)) if obj is not None else []:
                if "layerdrop" in attr and isinstance(getattr(obj, attr), float):
                    setattr(obj, attr, 0.0)
    return model


def special(model):
    cfg = model.config
    dec = getattr(cfg, "decoder", None)

    def get(k):
        v = getattr(cfg, k, None)
        if v is None and dec is not None:
            v = getattr(dec, k, None)
        return v

    return {k: get(k + "_token_id") for k in ("pad", "eos", "bos", "decoder_start")}


def content_range(sp):
    low = [v for v in sp.values() if isinstance(v, int) and v < 10]
    return (max(low) + 1 if low else 0), CONTENT_END


def copy_rows(rng, sp, n, lo, hi, min_len=3, max_len=9):
    rows = []
    for _ in range(n):
        k = int(rng.integers(min_len, max_len + 1))
        toks = rng.integers(lo, hi, size=k).tolist() + [sp["eos"]]
        rows.append({"input_ids": toks, "labels": list(toks)})
    return rows


def decoder_inputs(model, batch):
    """decoder_input_ids as HF's DataCollatorForSeq2Seq makes them (the
    model's prepare_decoder_input_ids_from_labels), else as the model's
    forward makes them from labels."""
    if hasattr(model, "prepare_decoder_input_ids_from_labels"):
        return model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
    seen = {}

    def grab(mod, args, kwargs):
        seen.setdefault("ids", kwargs.get("input_ids", args[0] if args else None))

    h = model.get_decoder().register_forward_pre_hook(grab, with_kwargs=True)
    with torch.no_grad():
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    h.remove()
    return seen["ids"].clone()


class Collator:
    """DataCollatorForSeq2Seq(model=model), padding="longest": inputs padded
    with pad, labels with -100, decoder_input_ids from the labels; no
    decoder_attention_mask."""

    def __init__(self, model, pad):
        self.model, self.pad = model, pad

    def __call__(self, rows):
        w = max(len(r["input_ids"]) for r in rows)
        lw = max(len(r["labels"]) for r in rows)
        ids = torch.full((len(rows), w), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), w), dtype=torch.long)
        labels = torch.full((len(rows), lw), -100, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
            mask[i, : len(r["input_ids"])] = 1
            labels[i, : len(r["labels"])] = torch.tensor(r["labels"])
        b = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        b["decoder_input_ids"] = decoder_inputs(self.model, b)
        return b


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def gradients(mt, model, sp, rng):
    lo, hi = content_range(sp)
    rows = copy_rows(rng, sp, 3, lo, hi, 3, 7)
    batch = Collator(model, sp["pad"])(rows)
    model.train()
    out = model(**batch)
    model.zero_grad()
    out.loss.backward()
    with torch.no_grad():
        model.eval()
        eval_loss = model(**batch).loss
    if not torch.equal(out.loss.detach(), eval_loss):
        raise SystemExit(f"{mt}: dropout still active: train loss {out.loss.item()} != eval loss {eval_loss.item()}")
    storage = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        storage.setdefault(id(p), []).append(n)
    grads, trained, aliases = {}, [], {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        trained.append(n)
        aliases[n] = sorted(set(storage[id(p)]) - {n})
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        grads[n] = g.detach().contiguous().clone()
    from safetensors.torch import save_file

    save_file(grads, os.path.join(ROOT, mt, "grads.safetensors"), metadata={"format": "pt"})
    sd = model.state_dict()
    trained_names = set(trained) | {a for v in aliases.values() for a in v}
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values()))
    return {
        "batch": {k: fl.tensor_ref(v) for k, v in batch.items()},
        "loss": {"mean": np.float32(out.loss.item()), "num_items": int((batch["labels"] != -100).sum())},
        "grad_global_norm": np.float32(norm.item()),
        "trained": trained,
        "tied_aliases": {k: v for k, v in aliases.items() if v},
        "not_trained": sorted(n for n in sd if n not in trained_names),
    }


def trainer_run(mt, sp, rng):
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    lo, hi = content_range(sp)
    train = copy_rows(rng, sp, 24, lo, hi)
    dev = copy_rows(rng, sp, 8, lo, hi)
    fl.seed_everything(0)
    model = load(mt)
    tmp = tempfile.mkdtemp(prefix=f"ortrain-arch-trainer-{mt}-")
    args = Seq2SeqTrainingArguments(output_dir=os.path.join(tmp, "out"), **TRAINER_ARGS)
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=ListDataset(train), eval_dataset=ListDataset(dev),
                             data_collator=Collator(model, sp["pad"]))
    res = trainer.train()
    hist = []
    for e in trainer.state.log_history:
        hist.append({k: (None if k.endswith(("_runtime", "_per_second")) else v) for k, v in e.items()})
    return {
        "arguments": {k: v for k, v in TRAINER_ARGS.items()},
        "model_accepts_loss_kwargs": bool(trainer.model_accepts_loss_kwargs),
        "train_rows": train, "eval_rows": dev,
        "log_history": hist,
        "train_output": {"global_step": res.global_step, "training_loss": res.training_loss},
    }


def generation(mt, model, sp, rng):
    lo, hi = content_range(sp)
    model.eval()
    batches = {}
    for name, n in (("b1", 1), ("b4", 4)):
        batches[name] = [r["input_ids"] for r in copy_rows(rng, sp, n, lo, hi, 3, 9)]
    cases = []
    for opt, kwargs in GENERATION:
        for bname, sources in batches.items():
            w = max(len(s) for s in sources)
            ids = torch.full((len(sources), w), sp["pad"], dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, s in enumerate(sources):
                ids[i, : len(s)] = torch.tensor(s)
                mask[i, : len(s)] = 1
            with torch.no_grad():
                out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
            cases.append({"name": opt, "batch": bname, "kwargs": kwargs, "sequences": out.tolist()})
    return {"sources": batches, "cases": cases}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("types", nargs="*")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    types = args.types or sorted(d for d in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, d, "model.onnx")))
    for mt in types:
        fl.seed_everything(0)
        rng = np.random.default_rng(int(hashlib.sha256(mt.encode()).hexdigest()[:8], 16))
        model = load(mt)
        sp = special(model)
        refs = {"command": fl.command(), "versions": fl.versions("torch", "transformers", "numpy", "safetensors"),
                "model_type": mt, "architecture": type(model).__name__, "special_ids": sp}
        refs["gradients"] = gradients(mt, model, sp, rng)
        refs["generation"] = generation(mt, load(mt), sp, rng)
        refs["trainer"] = trainer_run(mt, sp, rng)
        files = {}
        for fn in sorted(os.listdir(os.path.join(ROOT, mt))):
            if fn == "refs.json":
                continue
            p = os.path.join(ROOT, mt, fn)
            files[fn] = {"bytes": os.path.getsize(p), "sha256": hashlib.sha256(open(p, "rb").read()).hexdigest()}
        refs["files"] = files
        fl.write_json(os.path.join(ROOT, mt, "refs.json"), refs)
        losses = [e["loss"] for e in refs["trainer"]["log_history"] if "loss" in e]
        print(f"{mt}: loss {refs['gradients']['loss']['mean']:.4f}, {len(refs['gradients']['trained'])} trained tensors, "
              f"trainer losses {losses[0]:.4f}..{losses[-1]:.4f}, accepts loss kwargs {refs['trainer']['model_accepts_loss_kwargs']}")


if __name__ == "__main__":
    main()
