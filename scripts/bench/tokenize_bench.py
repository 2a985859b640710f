#!/usr/bin/env python3
"""Encode throughput (sentences/s): ortrain's Go tokenizers vs Hugging Face.

Same corpus (Tatoeba en-ro train.en + FLORES-200 eng devtest + SciTLDR train
source sentences, about 28k sentences), same machine, same cores:
  - HF tokenizers (Rust) through Python: the backend tokenizer of
    T5TokenizerFast / BartTokenizerFast, encode_batch (parallel, all cores)
    and with RAYON_NUM_THREADS=1 in a child process (one core);
  - MarianTokenizer (Python + sentencepiece) called per sentence;
  - Go: go test ./tokenize -bench BenchmarkEncodeCorpus (workers=1 and all).
Prints a table with medians over --repeat runs and the Go/HF ratios.

Usage: .venv/bin/python scripts/bench/tokenize_bench.py [--repeat 3]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")


def corpus():
    def lines(p):
        with open(p, encoding="utf-8", newline="") as f:
            out = f.read().split("\n")
        return out[:-1] if out and out[-1] == "" else out
    t = lines(os.path.join(SHARED, "translation", "tatoeba-en-ro", "train.en"))
    t += lines(os.path.join(SHARED, "translation", "flores200-devtest", "eng_Latn.devtest"))
    for l in lines(os.path.join(SHARED, "summarization", "scitldr-a", "train.jsonl")):
        t += json.loads(l)["source"]
    return t


def hf_rates(repeat):
    from transformers import BartTokenizerFast, MarianTokenizer, T5TokenizerFast
    texts = corpus()
    tk = os.path.join(SHARED, "tokenizers")
    fast = {
        "flan-t5-small": T5TokenizerFast.from_pretrained(os.path.join(tk, "flan-t5-small")).backend_tokenizer,
        "distilbart-cnn-6-6": BartTokenizerFast.from_pretrained(os.path.join(tk, "distilbart-cnn-6-6")).backend_tokenizer,
    }
    out = {}
    for name, tok in fast.items():
        runs, cpu = [], []
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            tok.encode_batch(texts)
            runs.append(len(texts) / (time.perf_counter() - t0))
            cpu.append(len(texts) / (time.process_time() - c0))
        out[name] = statistics.median(runs)
        out[name + "@cpu"] = statistics.median(cpu)
    if os.environ.get("RAYON_NUM_THREADS") != "1":
        marian = MarianTokenizer.from_pretrained(os.path.join(tk, "opus-mt-en-mg"))
        runs, cpu = [], []
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            for x in texts:
                marian(x)
            runs.append(len(texts) / (time.perf_counter() - t0))
            cpu.append(len(texts) / (time.process_time() - c0))
        out["opus-mt-en-mg.source"] = statistics.median(runs)
        out["opus-mt-en-mg.source@cpu"] = statistics.median(cpu)
    return len(texts), out


def go_rates(repeat):
    cmd = ["go", "test", "./tokenize", "-run", "^$", "-bench", "BenchmarkEncodeCorpus", "-benchtime=2x", f"-count={repeat}"]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    runs = {}
    for line in res.stdout.splitlines():
        m = re.match(r"BenchmarkEncodeCorpus/(\S+?)/workers=(\w+)-\d+\s", line)
        if not m:
            continue
        wall = re.search(r"([\d.e+]+) sentences/s\b", line)
        cpu = re.search(r"([\d.e+]+) sentences/cpu-s", line)
        runs.setdefault((m.group(1), m.group(2)), []).append(float(wall.group(1)))
        runs.setdefault((m.group(1), m.group(2) + "@cpu"), []).append(float(cpu.group(1)))
    return {k: statistics.median(v) for k, v in runs.items()}, " ".join(cmd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(hf_rates(args.repeat)[1]))
        return
    n, hf_all = hf_rates(args.repeat)
    env = dict(os.environ, RAYON_NUM_THREADS="1", TOKENIZERS_PARALLELISM="true")
    hf_one = json.loads(subprocess.run([sys.executable, __file__, "--child", "--repeat", str(args.repeat)], env=env,
                                       capture_output=True, text=True, check=True).stdout)
    # MarianTokenizer runs in one Python thread: compare it with Go on one core.
    for k in ("opus-mt-en-mg.source", "opus-mt-en-mg.source@cpu"):
        if k in hf_all:
            hf_one[k] = hf_all.pop(k)
    go, go_cmd = go_rates(args.repeat)
    print(f"corpus: {n} sentences; cores: {os.cpu_count()}; medians of {args.repeat} runs; Go: {go_cmd}")
    print("wall: sentences per second of elapsed time; cpu: sentences per CPU-second of the process (robust to other load)")
    print(f"{'tokenizer':24} {'cores':>5} {'HF wall':>9} {'Go wall':>9} {'Go/HF':>6} {'HF cpu':>9} {'Go cpu':>9} {'Go/HF':>6}")
    fmt = lambda v: f"{v:9.0f}" if v else f"{'-':>9}"
    rat = lambda a, b: f"{a / b:6.2f}" if a and b else f"{'-':>6}"
    for name in ("flan-t5-small", "distilbart-cnn-6-6", "opus-mt-en-mg.source", "opus-mt-en-mg.target"):
        for cores, hf in (("1", hf_one), ("all", hf_all)):
            gw, gc = go.get((name, cores)), go.get((name, cores + "@cpu"))
            if gw is None:
                continue
            hw, hc = hf.get(name), hf.get(name + "@cpu")
            print(f"{name:24} {cores:>5} {fmt(hw)} {fmt(gw)} {rat(gw, hw)} {fmt(hc)} {fmt(gc)} {rat(gc, hc)}")
    print("HF peers: tokenizers (Rust) encode_batch for T5/BART; MarianTokenizer (Python+sentencepiece, one thread) per sentence, one-core row only.")


if __name__ == "__main__":
    main()
