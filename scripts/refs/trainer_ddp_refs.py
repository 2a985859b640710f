#!/usr/bin/env python3
"""HF Seq2SeqTrainer on two processes (DDP, gloo on CPU) on the t5-tiny fixture.

Run with torchrun, which starts the two processes:

  torchrun --nproc_per_node 2 scripts/refs/trainer_ddp_refs.py [scenario ...]

Each scenario trains as scripts/refs/trainer_hf_refs.py does (the same data,
collator, dropout-free model, dataset order) but with two processes:
accelerate deals the per-device batches to the ranks (batch i to rank
i % 2, the last group evened out with examples from the start), DDP
averages the gradients, and rank 0 writes testdata/trainer/ddp/<scenario>/
{scenario.json,trainer_state.json} with the same fields as the one-process
references plus every rank's micro-batches (uids, label tokens,
num_items_in_batch). Wall-clock values are null.
"""
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

import trainer_hf_refs  # noqa: E402,F401  (turns T5's attention dropout off as well)
import trainer_refs as tr  # noqa: E402
from transformers import Seq2SeqTrainingArguments  # noqa: E402

OUT = os.path.join(tr.fl.TESTDATA, "trainer", "ddp")

SCENARIOS = {
    # 60 rows / 4 = 15 batches: 8 per rank (rank 1's last batch is rows 0-3
    # again); eval 20 rows / 6 = 4 batches, 2 per rank, the last one short
    # and filled up with rows 0-3 (Seq2SeqTrainer gathers without dropping
    # them).
    "ddp_ga2": dict(
        per_device_train_batch_size=4, gradient_accumulation_steps=2, num_train_epochs=2,
        warmup_steps=1, max_grad_norm=0.5, logging_steps=1,
        eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=4,
    ),
    # Label smoothing: the LabelSmoother divides by num_items_in_batch, the
    # label tokens of the window summed over both processes.
    "ddp_ga2_ls": dict(
        per_device_train_batch_size=4, gradient_accumulation_steps=2, max_steps=6,
        warmup_steps=1, logging_steps=1, label_smoothing_factor=0.1,
        eval_strategy="steps", eval_steps=3, save_strategy="steps", save_steps=3, save_total_limit=1,
    ),
    # Generation in evaluation: each process generates for its batches and
    # Seq2SeqTrainer gathers the predictions with accelerator.gather (filler
    # rows included) before compute_metrics; the best checkpoint by BLEU.
    "ddp_generate": dict(
        per_device_train_batch_size=4, gradient_accumulation_steps=2, max_steps=6, warmup_steps=1,
        logging_steps=2, eval_strategy="steps", eval_steps=3, save_strategy="steps", save_steps=3,
        save_total_limit=2, load_best_model_at_end=True, metric_for_best_model="bleu",
        predict_with_generate=True, generation_max_length=16, generation_num_beams=2,
    ),
    # Token counting: each process counts its micro-batch's non-padding
    # input tokens and Trainer._track_num_input_tokens gathers and sums
    # them over the processes.
    "ddp_tokens": dict(
        per_device_train_batch_size=4, gradient_accumulation_steps=2, max_steps=4, warmup_steps=1,
        logging_steps=1, include_num_input_tokens_seen="non_padding", save_strategy="no",
    ),
}


def run(name, train, dev):
    tr.fl.seed_everything(0)
    tmp = os.path.join("/tmp", f"ortrain-ddp-{name}-{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}")
    out_dir = os.path.join(tmp, "out")
    kw = dict(tr.BASE)
    kw.update(SCENARIOS[name])
    args = Seq2SeqTrainingArguments(output_dir=out_dir, **kw)  # joins the process group
    rank = dist.get_rank()
    model = tr.fresh_model(name, train)
    metrics = tr.Metrics() if kw.get("predict_with_generate") else None
    trainer = tr.RecordingTrainer(model=model, args=args, train_dataset=tr.ListDataset(train),
                                  eval_dataset=tr.ListDataset(dev), data_collator=tr.Collator(model),
                                  compute_metrics=metrics)
    res = trainer.train()
    trainer.save_state()
    final_eval = trainer.evaluate()
    micro = [None] * dist.get_world_size()
    dist.all_gather_object(micro, trainer.micro)
    dist.barrier()
    if rank != 0:
        return
    ckpts = {}
    for d in sorted(os.listdir(out_dir)):
        p = os.path.join(out_dir, d)
        if d.startswith("checkpoint-") and os.path.isdir(p):
            ckpts[d] = sorted(os.listdir(p))
    state = json.load(open(os.path.join(out_dir, "trainer_state.json")))

    def rel(p):
        return None if p is None else os.path.relpath(p, tmp)

    doc = {
        "command": "torchrun --nproc_per_node 2 scripts/refs/trainer_ddp_refs.py " + " ".join(sys.argv[1:]),
        "versions": tr.fl.versions("torch", "transformers", "accelerate", "numpy"),
        "world_size": dist.get_world_size(),
        "backend": dist.get_backend(),
        "model": "testdata/models/t5-tiny with every dropout off (as scripts/refs/trainer_hf_refs.py)",
        "data": {"train": "testdata/trainer/data/train.jsonl", "eval": "testdata/trainer/data/eval.jsonl",
                 "order": "dataset order (train_sampling_strategy='sequential'), batches dealt to ranks by accelerate"},
        "arguments": {k: v for k, v in sorted(kw.items())},
        "model_accepts_loss_kwargs": bool(trainer.model_accepts_loss_kwargs),
        "micro_batches_per_rank": micro,
        "checkpoints_on_disk": ckpts,
        "best_model_checkpoint": rel(state.get("best_model_checkpoint")),
        "best_metric": state.get("best_metric"),
        "train_output": {"global_step": res.global_step, "training_loss": res.training_loss, "metrics": res.metrics},
        "final_evaluate": final_eval,
        "log_history": state["log_history"],
        "compute_metrics": tr.METRICS_DEF if metrics else None,
        "evaluations_with_generate": metrics.calls if metrics else None,
    }
    state["best_model_checkpoint"] = rel(state.get("best_model_checkpoint"))
    dest = os.path.join(OUT, name)
    os.makedirs(dest, exist_ok=True)
    tr.fl.write_json(os.path.join(dest, "scenario.json"), tr.scrub(doc))
    with open(os.path.join(dest, "trainer_state.json"), "w") as f:
        f.write(json.dumps(tr.scrub(state), indent=2, sort_keys=True) + "\n")
    shutil.rmtree(tmp)
    print(f"{name}: steps {res.global_step} loss {res.training_loss:.5f} ckpts {list(ckpts)}")


def main():
    names = sys.argv[1:] or list(SCENARIOS)
    # The committed rows (tr.make_data() would rewrite them from both processes).
    train, dev = ([json.loads(line) for line in open(os.path.join(tr.DATA, f))] for f in ("train.jsonl", "eval.jsonl"))
    for n in names:
        run(n, train, dev)
        dist.barrier()


if __name__ == "__main__":
    main()
