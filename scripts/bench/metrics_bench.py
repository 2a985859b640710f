#!/usr/bin/env python3
"""Benchmark: `ortrain score` against sacrebleu and rouge-score on N pairs.

References are real sentences (Tatoeba en-ro train, FLORES-200 devtest,
TICO-19 test) replicated to N lines; hypotheses are seeded perturbations of
them (dropped, replaced and recased words), so the scores are realistic.
Every command runs REPEATS times as a fresh process (file reading, Python
start-up and imports included); the table gives median wall seconds and the
ratio peer / ortrain, and checks that both print the same score.

    .venv/bin/python scripts/bench/metrics_bench.py [--n 100000] [--repeats 3] [--data ../shared/data]
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

ROUGE_PEER = r"""
import sys, json, numpy as np
from rouge_score import rouge_scorer, scoring
hyp, ref, boot = sys.argv[1], sys.argv[2], int(sys.argv[3])
types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
with open(hyp, encoding="utf-8", newline="\n") as f:
    preds = [l.rstrip() for l in f]
with open(ref, encoding="utf-8", newline="\n") as f:
    targets = [l.rstrip() for l in f]
sc = rouge_scorer.RougeScorer(types, use_stemmer=True)
scores = [sc.score(t, p) for p, t in zip(preds, targets)]
out = {t: float(np.mean([s[t].fmeasure for s in scores])) for t in types}
if boot:
    agg = scoring.BootstrapAggregator(n_samples=boot)
    for s in scores:
        agg.add_scores(s)
    np.random.seed(42)
    out = {t: v.mid.fmeasure for t, v in agg.aggregate().items()}
print(json.dumps(out))
"""


def lines(path):
    with open(path, encoding="utf-8", newline="\n") as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def make_data(data, out, n):
    tr = os.path.join(data, "translation")
    refs = (lines(os.path.join(tr, "tatoeba-en-ro", "train.ro"))
            + lines(os.path.join(tr, "tatoeba-en-ro", "train.en"))
            + lines(os.path.join(tr, "flores200-devtest", "eng_Latn.devtest"))
            + lines(os.path.join(tr, "flores200-devtest", "fra_Latn.devtest"))
            + lines(os.path.join(tr, "tico19-test-en-fr", "tico19-test.en")))
    vocab = sorted({w for s in refs for w in s.split()})
    rng = random.Random(4)
    hyp_path, ref_path = os.path.join(out, "hyp.txt"), os.path.join(out, "ref.txt")
    with open(hyp_path, "w", encoding="utf-8") as h, open(ref_path, "w", encoding="utf-8") as r:
        for i in range(n):
            ref = refs[i % len(refs)]
            words = []
            for w in ref.split():
                x = rng.random()
                if x < 0.08:
                    continue
                if x < 0.15:
                    w = rng.choice(vocab)
                elif x < 0.19:
                    w = w.upper()
                words.append(w)
            h.write(" ".join(words) + "\n")
            r.write(ref + "\n")
    return hyp_path, ref_path


def timed(cmd, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if p.returncode != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
        out = p.stdout
    return statistics.median(times), times, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--only", default="bleu,chrf,rouge,rouge-bootstrap")
    ap.add_argument("--one-core", action="store_true", help="also time ortrain with --workers 1")
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "ortrain")
        subprocess.run(["go", "build", "-o", exe, "./cmd/ortrain"], cwd=ROOT, check=True)
        hyp, ref = make_data(args.data, tmp, args.n)
        rows = {
            "bleu": ([exe, "score", "--metric", "bleu", "--json", "--hyp", hyp, "--ref", ref],
                     [py, "-m", "sacrebleu", ref, "-i", hyp, "-m", "bleu", "-b", "-w", "10"], "sacrebleu"),
            "chrf": ([exe, "score", "--metric", "chrf", "--json", "--hyp", hyp, "--ref", ref],
                     [py, "-m", "sacrebleu", ref, "-i", hyp, "-m", "chrf", "-b", "-w", "10"], "sacrebleu"),
            "rouge": ([exe, "score", "--metric", "rouge", "--use-stemmer", "--json", "--hyp", hyp, "--ref", ref],
                      [py, "-c", ROUGE_PEER, hyp, ref, "0"], "rouge-score"),
            "rouge-bootstrap": ([exe, "score", "--metric", "rouge", "--use-stemmer", "--bootstrap", "1000", "--seed", "42",
                                 "--json", "--hyp", hyp, "--ref", ref],
                                [py, "-c", ROUGE_PEER, hyp, ref, "1000"], "rouge-score"),
        }
        print(f"{args.n} pairs, {args.repeats} runs each, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        print(f"{'metric':16} {'ortrain s':>10} {'peer s':>10} {'ratio':>7}  peer, scores (ortrain / peer)")
        for name in args.only.split(","):
            ours, peer, peer_name = rows[name]
            t_o, _, out_o = timed(ours, args.repeats)
            if args.one_core:
                t_1, _, _ = timed(ours + ["--workers", "1"], args.repeats)
            t_p, _, out_p = timed(peer, args.repeats)
            res = json.loads(out_o)
            if name.startswith("rouge"):
                key = "mid" if name.endswith("bootstrap") else None
                ours_v = [(res[t][key]["fmeasure"] if key else res[t]["fmeasure"]) for t in ["rouge1", "rouge2", "rougeL", "rougeLsum"]]
                peer_v = list(json.loads(out_p).values())
                agree = all(abs(a - b) <= 1e-9 for a, b in zip(ours_v, peer_v))
                shown = f"F {ours_v[0]:.6f}.. / {peer_v[0]:.6f}.."
            else:
                ours_v, peer_v = res["score"], float(out_p.strip())
                agree = abs(round(ours_v, 10) - peer_v) <= 1e-9
                shown = f"{ours_v:.10f} / {peer_v:.10f}"
            print(f"{name:16} {t_o:10.2f} {t_p:10.2f} {t_p / t_o:7.1f}  {peer_name}, {shown} {'equal' if agree else 'DIFFER'}",
                  flush=True)
            if args.one_core:
                print(f"{name + ' (1 core)':16} {t_1:10.2f} {t_p:10.2f} {t_p / t_1:7.1f}", flush=True)


if __name__ == "__main__":
    main()
