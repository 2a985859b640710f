"""HF Seq2SeqTrainer reference runs on the t5-tiny fixture.

Each scenario trains t5-tiny (testdata/models/t5-tiny, dropout set to 0) with
Seq2SeqTrainer on already-tokenized copy-task data committed under
testdata/trainer/data/ (so a Go trainer can feed identical batches without a
tokenizer), in dataset order (train_sampling_strategy="sequential"), on CPU,
and writes testdata/trainer/<scenario>/:
  scenario.json       arguments, data collator rule, per-step batch
                      composition (dataset uids of every micro-batch, tokens
                      counted for num_items_in_batch, each micro-batch loss),
                      checkpoint folders left on disk and their files,
                      best_model_checkpoint / best_metric, train() metrics,
                      the final evaluate() metrics, generated predictions per
                      evaluation (predict_with_generate scenarios), versions
  trainer_state.json  the output_dir trainer_state.json written by
                      Trainer.save_state() after train()
Wall-clock fields (train_runtime, eval_runtime, *_per_second) are replaced by
null in both files so that reruns are byte-identical; everything else is
verbatim.

Run: .venv/bin/python scripts/refs/trainer_refs.py [scenario ...]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures"))

import numpy as np
import torch
from rouge_score import rouge_scorer
import sacrebleu
from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

import fixturelib as fl

MODEL = "t5-tiny"
OUT = os.path.join(fl.TESTDATA, "trainer")
DATA = os.path.join(OUT, "data")
PAD, EOS = 0, 1
CONTENT = (3, 48)

WALL_CLOCK = ("_runtime", "_samples_per_second", "_steps_per_second")


# ---------------------------------------------------------------- data


def make_data():
    """Copy task: target = source tokens + EOS; lengths 3..12; seeded."""
    rng = np.random.default_rng(20261127)

    def ex(split, i):
        n = int(rng.integers(3, 13))
        toks = rng.integers(*CONTENT, size=n).tolist()
        return {"uid": f"{split}-{i}", "input_ids": toks + [EOS], "labels": toks + [EOS]}

    train = [ex("train", i) for i in range(60)]
    dev = [ex("eval", i) for i in range(20)]
    for name, rows in (("train.jsonl", train), ("eval.jsonl", dev)):
        os.makedirs(DATA, exist_ok=True)
        with open(os.path.join(DATA, name), "w") as f:
            for r in rows:
                f.write(json.dumps(r, sort_keys=True) + "\n")
    return train, dev


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


class Collator:
    """What DataCollatorForSeq2Seq(model=t5) does with padding="longest":
    input_ids padded with pad (0), attention_mask 1/0, labels padded with -100,
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels)
    (shift right, start token 0, -100 -> pad). No decoder_attention_mask."""

    def __init__(self, model):
        self.model = model

    def __call__(self, rows):
        w = max(len(r["input_ids"]) for r in rows)
        lw = max(len(r["labels"]) for r in rows)
        ids = torch.full((len(rows), w), PAD, dtype=torch.long)
        mask = torch.zeros((len(rows), w), dtype=torch.long)
        labels = torch.full((len(rows), lw), -100, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
            mask[i, : len(r["input_ids"])] = 1
            labels[i, : len(r["labels"])] = torch.tensor(r["labels"])
        dec = self.model.prepare_decoder_input_ids_from_labels(labels=labels)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels, "decoder_input_ids": dec,
                "uid": [r["uid"] for r in rows]}


# ---------------------------------------------------------------- metrics


def ids_to_text(ids):
    """Token ids -> text without a tokenizer: every id other than pad/eos/-100
    becomes the word "w<id>"; stops at the first EOS."""
    words = []
    for t in ids:
        t = int(t)
        if t == EOS:
            break
        if t in (PAD, -100):
            continue
        words.append(f"w{t}")
    return " ".join(words)


class Metrics:
    def __init__(self):
        self.calls = []
        self.scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=False)

    def __call__(self, p):
        preds, labels = p.predictions, p.label_ids
        preds = np.where(preds != -100, preds, PAD)
        labels = np.where(labels != -100, labels, PAD)
        hyp = [ids_to_text(r) for r in preds]
        ref = [ids_to_text(r) for r in labels]
        bleu = sacrebleu.corpus_bleu(hyp, [ref])
        out = {"bleu": round(bleu.score, 4)}
        agg = {k: [] for k in ["rouge1", "rouge2", "rougeL", "rougeLsum"]}
        for h, r in zip(hyp, ref):
            s = self.scorer.score(r, h)
            for k in agg:
                agg[k].append(s[k].fmeasure)
        for k, v in agg.items():
            out[k] = round(float(np.mean(v)) * 100, 4)
        out["gen_len"] = round(float(np.mean([np.count_nonzero(r != PAD) for r in preds])), 4)
        self.calls.append({"predictions": preds.tolist(), "hypotheses": hyp, "references": ref,
                           "bleu_signature": str(bleu.format(signature=True)).split(" = ")[0]
                           if hasattr(bleu, "format") else None, "metrics": out})
        return out


METRICS_DEF = (
    "predictions and labels: -100 -> pad (0); ids_to_text: ids other than pad/eos become 'w<id>' joined by spaces, "
    "stop at the first eos; bleu = round(sacrebleu.corpus_bleu(hyp, [ref]).score, 4) (defaults: 13a, exp smoothing); "
    "rouge1/rouge2/rougeL/rougeLsum = round(mean F-measure * 100, 4) with rouge_score RougeScorer(use_stemmer=False) "
    "score(target=ref, prediction=hyp); gen_len = round(mean count of non-pad ids in the padded predictions, 4)"
)


# ---------------------------------------------------------------- trainer


class RecordingTrainer(Seq2SeqTrainer):
    """Records every training micro-batch (uids, token count, loss) and drops
    the uid column before the model sees the batch."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.micro = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        uids = inputs.pop("uid", None)
        label_tokens = int((inputs["labels"] != -100).sum())  # the label smoother path pops "labels"
        res = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if model.training and uids is not None:
            loss = res[0] if isinstance(res, tuple) else res
            self.micro.append({
                "optimizer_step": self.state.global_step + 1,
                "uids": uids,
                "label_tokens": label_tokens,
                "num_items_in_batch": None if num_items_in_batch is None else int(num_items_in_batch),
                "loss_returned_by_compute_loss": float(loss.detach()),
            })
        return res

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        inputs.pop("uid", None)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs)


BASE = dict(
    per_device_train_batch_size=8,
    per_device_eval_batch_size=6,  # 20 eval rows -> 6,6,6,2: Seq2SeqTrainer weighs the short batch fully
    learning_rate=1e-3,
    weight_decay=0.01,
    max_grad_norm=1.0,
    lr_scheduler_type="linear",
    seed=42,
    use_cpu=True,
    dataloader_num_workers=0,
    remove_unused_columns=False,
    train_sampling_strategy="sequential",
    report_to="none",
    disable_tqdm=True,
)

SCENARIOS = {
    "steps_ga1": dict(
        num_train_epochs=2, warmup_steps=3, logging_steps=2, logging_first_step=True,
        eval_strategy="steps", eval_steps=4, save_strategy="steps", save_steps=8,
    ),
    # t5 in transformers 5.x: forward(**kwargs) => model_accepts_loss_kwargs,
    # num_items_in_batch is passed but T5 ignores it (CrossEntropyLoss mean),
    # and the Trainer then skips the 1/GA scaling: each step's loss and
    # gradient are the SUM of the micro-batch means. Pinned as HF does it.
    "steps_ga4": dict(
        per_device_train_batch_size=4, gradient_accumulation_steps=4, num_train_epochs=2,
        warmup_steps=0.25, max_grad_norm=0.5, logging_steps=1,
        eval_strategy="steps", eval_steps=4, save_strategy="steps", save_steps=4,
    ),
    # Same, with model.accepts_loss_kwargs = False (HF's documented switch):
    # the Trainer divides each micro-batch mean by the window's micro-batch
    # count (3 for the short last window).
    "steps_ga4_mean": dict(
        per_device_train_batch_size=4, gradient_accumulation_steps=4, num_train_epochs=2,
        warmup_steps=0.25, max_grad_norm=0.5, logging_steps=1,
        eval_strategy="steps", eval_steps=4, save_strategy="steps", save_steps=4,
    ),
    # metric "loss" with greater_is_better=True makes the *earliest* checkpoint
    # the best, so rotation has to protect a non-latest checkpoint.
    "best_limit2": dict(
        max_steps=20, warmup_steps=2, logging_steps=4, eval_strategy="steps", eval_steps=4,
        save_strategy="steps", save_steps=4, save_total_limit=2, load_best_model_at_end=True,
        metric_for_best_model="loss", greater_is_better=True,
    ),
    "best_limit1": dict(
        max_steps=12, logging_steps=4, eval_strategy="steps", eval_steps=4,
        save_strategy="steps", save_steps=4, save_total_limit=1, load_best_model_at_end=True,
        metric_for_best_model="loss", greater_is_better=True,
    ),
    # HF's label smoother path in compute_loss (LabelSmoother, epsilon 0.1).
    "label_smoothing": dict(
        max_steps=8, logging_steps=2, label_smoothing_factor=0.1, eval_strategy="steps", eval_steps=4,
        save_strategy="no",
    ),
    # Epoch strategies for logging, evaluation and saving; 60 rows / 8 = 8 steps per epoch.
    "epoch_strategy": dict(
        num_train_epochs=2, logging_strategy="epoch", eval_strategy="epoch", save_strategy="epoch",
        warmup_steps=2,
    ),
    # Interrupted and resumed: the run is made twice, uninterrupted (recorded
    # under uninterrupted_run) and resumed from checkpoint-8 by a new Trainer.
    "resume": dict(
        max_steps=16, logging_steps=2, eval_strategy="steps", eval_steps=4, save_strategy="steps",
        save_steps=8, warmup_steps=3, resume_at=8,
    ),
    "generate_metrics": dict(
        max_steps=16, warmup_steps=2, logging_steps=4, eval_strategy="steps", eval_steps=8,
        save_strategy="steps", save_steps=8, save_total_limit=2, load_best_model_at_end=True,
        metric_for_best_model="bleu", predict_with_generate=True, generation_max_length=16,
        generation_num_beams=2,
    ),
}


def scrub(o):
    """Wall-clock metrics -> None, recursively."""
    if isinstance(o, dict):
        return {k: (None if any(k.endswith(s) for s in WALL_CLOCK) else scrub(v)) for k, v in o.items()}
    if isinstance(o, list):
        return [scrub(x) for x in o]
    return o


DROPOUT_ATTRS = ("dropout", "attention_dropout", "activation_dropout")


def fresh_model(name, train_rows):
    """The fixture with every dropout off: nn.Dropout modules, and the float
    rates that attention modules keep for nn.functional.dropout (T5Attention
    copies config.dropout_rate into self.dropout at construction)."""
    model = fl.load_fixture(MODEL)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
        for attr in DROPOUT_ATTRS:
            if isinstance(getattr(m, attr, None), float):
                setattr(m, attr, 0.0)
    model.config.dropout_rate = 0.0
    if name == "steps_ga4_mean":
        model.accepts_loss_kwargs = False
    # Proof that dropout is off: training mode gives the eval-mode loss, bit for bit.
    batch = Collator(model)(train_rows[:8])
    batch.pop("uid")
    with torch.no_grad():
        model.train()
        lt = model(**batch).loss
        model.eval()
        le = model(**batch).loss
    if not torch.equal(lt, le):
        raise SystemExit(f"dropout is still active: train-mode loss {float(lt)} != eval-mode loss {float(le)}")
    return model


def run(name, train, dev):
    fl.seed_everything(0)
    tmp = tempfile.mkdtemp(prefix=f"ortrain-trainer-{name}-")
    out_dir = os.path.join(tmp, "out")
    kw = dict(BASE)
    kw.update(SCENARIOS[name])
    resume_at = kw.pop("resume_at", None)
    args = Seq2SeqTrainingArguments(output_dir=out_dir, **kw)

    def make_trainer():
        model = fresh_model(name, train)
        m = Metrics() if kw.get("predict_with_generate") else None
        return RecordingTrainer(
            model=model, args=args, train_dataset=ListDataset(train), eval_dataset=ListDataset(dev),
            data_collator=Collator(model), compute_metrics=m,
        ), m

    trainer, metrics = make_trainer()
    res = trainer.train()
    uninterrupted = None
    if resume_at is not None:
        # Keep the uninterrupted run's record, delete every later checkpoint,
        # and resume a new Trainer (fresh model object) from checkpoint-<resume_at>.
        uninterrupted = {"log_history": json.load(open(os.path.join(out_dir, f"checkpoint-{res.global_step}",
                                                                    "trainer_state.json")))["log_history"],
                         "train_output": {"global_step": res.global_step, "training_loss": res.training_loss,
                                          "metrics": res.metrics}}
        for d in os.listdir(out_dir):
            if d.startswith("checkpoint-") and int(d.split("-")[1]) > resume_at:
                shutil.rmtree(os.path.join(out_dir, d))
        fl.seed_everything(0)
        trainer, metrics = make_trainer()
        res = trainer.train(resume_from_checkpoint=os.path.join(out_dir, f"checkpoint-{resume_at}"))
    trainer.save_state()
    final_eval = trainer.evaluate()

    ckpts = {}
    for d in sorted(os.listdir(out_dir)):
        p = os.path.join(out_dir, d)
        if d.startswith("checkpoint-") and os.path.isdir(p):
            ckpts[d] = sorted(os.listdir(p))
    state = json.load(open(os.path.join(out_dir, "trainer_state.json")))

    def rel(p):
        return None if p is None else os.path.relpath(p, tmp)

    steps = {}
    for m in trainer.micro:
        steps.setdefault(m["optimizer_step"], []).append(m)
    doc = {
        "command": fl.command(),
        "versions": fl.versions("torch", "transformers", "accelerate", "numpy", "sacrebleu", "rouge_score"),
        "model": f"testdata/models/{MODEL} with every dropout off (nn.Dropout p=0 and the float rates of "
                 "attention modules; checked: train-mode loss == eval-mode loss)",
        "data": {"train": "testdata/trainer/data/train.jsonl", "eval": "testdata/trainer/data/eval.jsonl",
                 "order": "dataset order (train_sampling_strategy='sequential'); eval is sequential",
                 "collator": Collator.__doc__.strip()},
        "arguments": {k: v for k, v in sorted(kw.items())},
        "output_dir": "out (paths below are relative to the run's temporary folder)",
        "model_accepts_loss_kwargs": bool(trainer.model_accepts_loss_kwargs),
        "loss_scaling_note": (
            "T5ForConditionalGeneration.forward takes **kwargs, so the Trainer passes num_items_in_batch and does "
            "not divide by the number of micro-batches, but T5 computes CrossEntropyLoss(mean) and ignores it: "
            "with gradient accumulation each step's loss and gradient are the sum of the micro-batch means"
            if trainer.model_accepts_loss_kwargs else
            "model.accepts_loss_kwargs = False: each micro-batch mean loss is divided by the number of "
            "micro-batches in its accumulation window (shorter last window divides by fewer)"),
        "batches": [{"optimizer_step": s, "micro_batches": [
            {k: v for k, v in m.items() if k != "optimizer_step"} for m in ms]} for s, ms in sorted(steps.items())],
        "checkpoints_on_disk": ckpts,
        "best_model_checkpoint": rel(state.get("best_model_checkpoint")),
        "best_metric": state.get("best_metric"),
        "best_global_step": state.get("best_global_step"),
        "train_output": {"global_step": res.global_step, "training_loss": res.training_loss, "metrics": res.metrics},
        "final_evaluate": final_eval,
        "compute_metrics": METRICS_DEF if metrics else None,
        "evaluations_with_generate": metrics.calls if metrics else None,
        "log_history": state["log_history"],
        "resumed_from": None if resume_at is None else f"out/checkpoint-{resume_at}",
        "uninterrupted_run": uninterrupted,
    }
    state["best_model_checkpoint"] = rel(state.get("best_model_checkpoint"))
    dest = os.path.join(OUT, name)
    os.makedirs(dest, exist_ok=True)
    fl.write_json(os.path.join(dest, "scenario.json"), scrub(doc))
    with open(os.path.join(dest, "trainer_state.json"), "w") as f:
        f.write(json.dumps(scrub(state), indent=2, sort_keys=True) + "\n")
    shutil.rmtree(tmp)
    print(f"{name}: steps {res.global_step} loss {res.training_loss:.5f} ckpts {list(ckpts)} "
          f"best {doc['best_model_checkpoint']} {doc['best_metric']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=list(SCENARIOS))
    a = ap.parse_args()
    train, dev = make_data()
    for n in a.names:
        run(n, train, dev)


if __name__ == "__main__":
    main()
