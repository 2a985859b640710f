#!/usr/bin/env python3
"""End-to-end training benchmark and Tatoeba en-ro fine-tune: ortrain vs HF Seq2SeqTrainer (issue 8).

Model: a small T5 (T5ForConditionalGeneration, relu FFN, tied embeddings,
vocab 32128 for the FLAN-T5 tokenizer, d_model 128, d_ff 512, 2+2 layers,
4 heads, dropout 0), seeded random init, exported to ONNX as
scripts/fixtures/make_tiny_models.py exports (model.onnx + Optimum graphs).
Data: ../shared/data/translation/tatoeba-en-ro (train; for evaluation the
first 200 dev pairs, or --dev dev.jsonl for all 719), T5 prefix
"translate English to Romanian: ", max 64 tokens per side.

  bench     both trainers run the same arguments (max_steps, batch, lr,
            linear schedule, no evaluation) with the same number of CPU
            threads, each in its own process, N times; reports the median
            train_samples_per_second, tokens/s (samples/s times the mean
            source+target tokens of the training set: both see the same
            data, in different shuffled orders) and each process's peak RSS
            (wait4 ru_maxrss), and the ratio ortrain/HF.
  finetune  ortrain trains for a fixed budget with evaluation (loss, BLEU,
            ROUGE via predict_with_generate) every --eval-steps steps and
            writes training_curves.png; the same run with HF is optional
            (--with-hf) for comparing curves.

Run: .venv/bin/python scripts/bench/trainer_bench.py bench --steps 60 --repeats 3
     .venv/bin/python scripts/bench/trainer_bench.py finetune --steps 1500 --eval-steps 250
Needs: go (builds ./cmd/ortrain), ONNX Runtime (scripts/fetch-onnxruntime.sh).
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "data")
sys.path.insert(0, os.path.join(REPO, "scripts", "fixtures"))

PREFIX = "translate English to Romanian: "
MAXLEN = 64


def build_model(work):
    out = os.path.join(work, "t5-bench")
    if os.path.exists(os.path.join(out, "decoder_with_past_model.onnx")):
        return out
    import torch
    from safetensors.torch import save_file
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

    import make_tiny_models as mtm

    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=32128, d_model=128, d_kv=32, d_ff=512, num_layers=2, num_decoder_layers=2,
                   num_heads=4, relative_attention_num_buckets=32, relative_attention_max_distance=128,
                   dropout_rate=0.0, feed_forward_proj="relu", tie_word_embeddings=True, pad_token_id=0,
                   eos_token_id=1, decoder_start_token_id=0, attn_implementation="eager")
    model = T5ForConditionalGeneration(cfg).eval()
    model.save_pretrained(out)
    GenerationConfig(decoder_start_token_id=0, eos_token_id=1, pad_token_id=0, max_length=MAXLEN).save_pretrained(out)
    shutil.copy(os.path.join(SHARED, "tokenizers", "flan-t5-small", "tokenizer.json"), out)
    ids = torch.tensor([[13, 8, 55, 1, 0], [21, 34, 5, 9, 1]])
    mask = (ids != 0).long()
    mask[0, 3] = 1
    dec = torch.tensor([[0, 17, 4, 1], [0, 8, 1, 0]])
    tb = {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": dec,
          "decoder_attention_mask": torch.ones_like(dec)}
    mtm.export_graphs(model, out, tb, 2)
    return out


def make_data(work):
    d = os.path.join(work, "tatoeba")
    os.makedirs(d, exist_ok=True)
    src = os.path.join(SHARED, "translation", "tatoeba-en-ro")
    for split in ("train", "dev", "test"):
        path = os.path.join(d, f"{split}.jsonl")
        if os.path.exists(path):
            continue
        en = open(os.path.join(src, f"{split}.en"), encoding="utf-8").read().splitlines()
        ro = open(os.path.join(src, f"{split}.ro"), encoding="utf-8").read().splitlines()
        with open(path, "w", encoding="utf-8") as f:
            for a, b in zip(en, ro):
                f.write(json.dumps({"translation": {"en": a, "ro": b}}, ensure_ascii=False) + "\n")
    sub = os.path.join(d, "dev200.jsonl")
    if not os.path.exists(sub):
        with open(os.path.join(d, "dev.jsonl"), encoding="utf-8") as f, open(sub, "w", encoding="utf-8") as g:
            g.writelines(f.readlines()[:200])
    return d


def hf_train(args):
    """Runs in a child process: HF Seq2SeqTrainer, prints the train metrics as JSON."""
    import numpy as np
    import torch
    from transformers import (DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments,
                              T5ForConditionalGeneration, T5TokenizerFast)

    torch.set_num_threads(args.threads)
    tok = T5TokenizerFast(tokenizer_file=os.path.join(args.model, "tokenizer.json"))
    model = T5ForConditionalGeneration.from_pretrained(args.model)
    rows = [json.loads(l)["translation"] for l in open(os.path.join(args.data, "train.jsonl"), encoding="utf-8")]

    class DS(torch.utils.data.Dataset):
        def __init__(self, rows):
            self.items = []
            for r in rows:
                x = tok(PREFIX + r["en"], max_length=MAXLEN, truncation=True)
                y = tok(text_target=r["ro"], max_length=MAXLEN, truncation=True)
                self.items.append({"input_ids": x["input_ids"], "attention_mask": x["attention_mask"],
                                   "labels": y["input_ids"]})

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return self.items[i]

    ds = DS(rows)
    targs = Seq2SeqTrainingArguments(output_dir=args.out, max_steps=args.steps, per_device_train_batch_size=args.batch,
                                     gradient_accumulation_steps=args.ga, learning_rate=args.lr, weight_decay=0.01,
                                     warmup_steps=0.1, logging_steps=max(1, args.steps // 10), save_strategy="no",
                                     report_to="none", disable_tqdm=True, use_cpu=True, seed=42,
                                     dataloader_num_workers=0)
    tr = Seq2SeqTrainer(model=model, args=targs, train_dataset=ds, data_collator=DataCollatorForSeq2Seq(tok, model=model))
    res = tr.train()
    print("RESULT " + json.dumps(res.metrics))


def mean_tokens(data, model):
    from transformers import T5TokenizerFast
    tok = T5TokenizerFast(tokenizer_file=os.path.join(model, "tokenizer.json"))
    n = t = 0
    for line in open(os.path.join(data, "train.jsonl"), encoding="utf-8"):
        r = json.loads(line)["translation"]
        t += len(tok(PREFIX + r["en"], max_length=MAXLEN, truncation=True)["input_ids"])
        t += len(tok(text_target=r["ro"], max_length=MAXLEN, truncation=True)["input_ids"])
        n += 1
    return t / n


def run_child(cmd, env=None):
    t0 = time.time()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    out = []
    for line in p.stdout:
        out.append(line)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.stderr.write("".join(out[-40:]))
        raise SystemExit(f"{cmd[0]} failed ({p.returncode})")
    return "".join(out), ru.ru_maxrss / 1024.0, time.time() - t0


def ortrain_cmd(args, binary, extra):
    return [binary, "train", "--no-progress", "--model", args.model, "--train_file", os.path.join(args.data, "train.jsonl"),
            "--source_lang", "en", "--target_lang", "ro", "--source_prefix", PREFIX, "--max_source_length", str(MAXLEN),
            "--max_target_length", str(MAXLEN), "--do_train", "--per_device_train_batch_size", str(args.batch),
            "--gradient_accumulation_steps", str(args.ga), "--learning_rate", str(args.lr), "--weight_decay", "0.01",
            "--warmup_steps", "0.1", "--threads", str(args.threads), "--overwrite_output_dir", "--seed", "42"] + extra


def build_ortrain(work):
    binary = os.path.join(work, "ortrain")
    subprocess.run(["go", "build", "-o", binary, "./cmd/ortrain"], cwd=REPO, check=True)
    return binary


def bench(args):
    binary = build_ortrain(args.work)
    toks = mean_tokens(args.data, args.model)
    res = {"hf": [], "ortrain": []}
    for r in range(args.repeats):
        out_dir = os.path.join(args.work, "bench-hf")
        text, rss, wall = run_child([sys.executable, __file__, "hf-child", "--model", args.model, "--data", args.data,
                                     "--out", out_dir, "--steps", str(args.steps), "--batch", str(args.batch),
                                     "--ga", str(args.ga), "--lr", str(args.lr), "--threads", str(args.threads)])
        m = json.loads(text.split("RESULT ", 1)[1].splitlines()[0])
        res["hf"].append({"samples_per_second": m["train_samples_per_second"], "train_runtime": m["train_runtime"],
                          "peak_rss_mb": rss, "wall_s": wall})
        out_dir = os.path.join(args.work, "bench-ortrain")
        text, rss, wall = run_child(ortrain_cmd(args, binary, ["--output_dir", out_dir, "--max_steps", str(args.steps),
                                                               "--logging_steps", str(max(1, args.steps // 10)),
                                                               "--save_strategy", "no"]))
        m = json.load(open(os.path.join(out_dir, "train_results.json")))
        res["ortrain"].append({"samples_per_second": m["train_samples_per_second"], "train_runtime": m["train_runtime"],
                               "peak_rss_mb": rss, "wall_s": wall})
        print(f"repeat {r}: hf {res['hf'][-1]} ortrain {res['ortrain'][-1]}", flush=True)
    summary = {}
    for k, v in res.items():
        sps = statistics.median(x["samples_per_second"] for x in v)
        summary[k] = {"median_samples_per_second": sps, "median_tokens_per_second": sps * toks,
                      "median_peak_rss_mb": statistics.median(x["peak_rss_mb"] for x in v), "runs": v}
    summary["ratio_ortrain_over_hf"] = summary["ortrain"]["median_samples_per_second"] / summary["hf"]["median_samples_per_second"]
    summary["setup"] = {"steps": args.steps, "batch": args.batch, "ga": args.ga, "threads": args.threads,
                        "mean_tokens_per_example": toks, "model": "T5 d_model 128, d_ff 512, 2+2 layers, vocab 32128",
                        "nproc": os.cpu_count()}
    print(json.dumps(summary, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)


def finetune(args):
    binary = build_ortrain(args.work)
    out_dir = args.out or os.path.join(args.work, "tatoeba-ortrain")
    text, rss, wall = run_child(ortrain_cmd(args, binary, [
        "--output_dir", out_dir, "--max_steps", str(args.steps), "--validation_file", os.path.join(args.data, args.dev),
        "--eval_strategy", "steps", "--eval_steps", str(args.eval_steps), "--save_steps", str(args.eval_steps),
        "--save_total_limit", "2", "--load_best_model_at_end", "--metric_for_best_model", "bleu",
        "--logging_steps", str(max(1, args.eval_steps // 5)), "--predict_with_generate", "--generation_max_length",
        str(MAXLEN), "--per_device_eval_batch_size", "64", "--eval_on_start", "--report_to", "jsonl"]))
    evals = [e for e in json.load(open(os.path.join(out_dir, "trainer_state.json")))["log_history"] if "eval_bleu" in e]
    print(f"ortrain: {wall:.0f} s wall, peak RSS {rss:.0f} MB; plot: {os.path.join(out_dir, 'training_curves.png')}")
    print("step  eval_loss  bleu  rouge1  rouge2  rougeL  gen_len")
    for e in evals:
        print(f"{e['step']:5d}  {e['eval_loss']:.4f}  {e['eval_bleu']:.2f}  {e['eval_rouge1']:.2f}  {e['eval_rouge2']:.2f}  "
              f"{e['eval_rougeL']:.2f}  {e['eval_gen_len']:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["bench", "finetune", "hf-child"])
    ap.add_argument("--work", default="/tmp/ortrain-trainer-bench")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--eval-steps", type=int, default=250)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ga", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default="")
    ap.add_argument("--dev", default="dev200.jsonl", help="evaluation file in the data folder (dev.jsonl: all 719)")
    ap.add_argument("--model", default="")
    ap.add_argument("--data", default="")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.mode == "hf-child":
        return hf_train(args)
    os.makedirs(args.work, exist_ok=True)
    args.model = args.model or build_model(args.work)
    args.data = args.data or make_data(args.work)
    (bench if args.mode == "bench" else finetune)(args)


if __name__ == "__main__":
    main()
