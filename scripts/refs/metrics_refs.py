#!/usr/bin/env python3
"""Reference values for ortrain's metrics package (issue 4).

Runs the real sacrebleu and rouge-score on subsamples of the shared corpora
and on adversarial strings, and writes testdata/metrics/*.json with the inputs
and the results, so the Go tests need neither Python nor the corpora.

    .venv/bin/python scripts/refs/metrics_refs.py [--data ../shared/data] [--out testdata/metrics]

Deterministic: seeded perturbations, sorted keys; rerunning gives the same bytes.
"""
import argparse
import json
import os
import random
import sys
from importlib.metadata import version

import numpy as np
import regex
import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh
from nltk.stem import porter
from rouge_score import rouge_scorer, scoring

COMMAND = "/work/pyenv/bin/python scripts/refs/metrics_refs.py"

# --------------------------------------------------------------------------
# Inputs

ADVERSARIAL = [
    # (hypothesis, reference)
    ("", ""),
    ("", "Something here."),
    ("Only a hypothesis.", ""),
    ("   ", "\t \t"),
    ("The cat sat on the mat.", "The cat sat on the mat."),
    ("The cat sat on the mat .", "The cat is on the mat."),
    ("Hello, world! It's 3.14, or 1,000.50 -- maybe 3-4 times.", "Hello world: it is 3.14 or 1,000.50 - maybe 3 - 4 times!"),
    ("In 1990. and 2001, sales fell.", "In 1990 and 2001 sales fell."),
    ("&quot;Quoted&quot; &amp; &lt;tagged&gt; &apos;x&apos;", "\"Quoted\" & <tagged> 'x'"),
    ("<skipped> words <skipped>", "words"),
    ("tab\tseparated\twords\there", "tab separated words here"),
    ("non\u00a0breaking\u2009thin\u3000ideographic\u2028line", "non breaking thin ideographic line"),
    ("file\x1cgroup\x1drecord\x1eunit\x1fsep", "file group record unit sep"),
    ("zero\u200bwidth\u200cjoiners", "zero width joiners"),
    ("“Smart quotes” and ‘single’ — dashes – and … ellipsis", "\"Smart quotes\" and 'single' - dashes - and ... ellipsis"),
    ("«Bonjour», dit-il ; c’est l’été !", "« Bonjour » , dit-il ; c'est l'été !"),
    ("¿Dónde está? ¡Aquí!", "¿Dónde está ? ¡ Aquí !"),
    ("这是一个测试。我们喜欢中文，标点！", "这是一个测试，我们喜欢中文。"),
    ("中文English混合123数字，还有ＡＢＣ全角。", "中文 English 混合 123 数字，还有 ABC 全角。"),
    ("日本語のテキストです。カタカナとひらがな。", "日本語のテキスト。カタカナ、ひらがな！"),
    ("한국어 문장입니다.", "한국어 문장 입니다."),
    ("Ελληνικά: ΟΔΟΣ ΣΟΦΟΣ Σ.Σ. ΌΣΟΣ", "ελληνικά: οδος σοφος σ.σ. όσος"),
    ("İSTANBUL'da KELVIN 5\u212a ß Straße ǅ", "istanbul'da kelvin 5k ss strasse dž"),
    ("Привет, мир! Это тест.", "Привет мир! Это тест"),
    ("مرحبا بالعالم، هذا اختبار.", "مرحبا بالعالم هذا اختبار"),
    ("नमस्ते दुनिया। यह परीक्षण है।", "नमस्ते दुनिया यह परीक्षण है"),
    ("ภาษาไทยไม่มีช่องว่าง", "ภาษาไทย ไม่มี ช่องว่าง"),
    ("Emoji 😀👍🏽 and ∑∫√ math € $ £ ¥ ©®™ symbols", "Emoji 😀 and math symbols € $"),
    ("a\u0301 combining e\u0301 marks", "á combining é marks"),
    ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "aaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ("the the the the the the the the the the", "the cat the dog the end"),
    ("!!! ??? ... ,,, ;;; :::", "!?.,;:"),
    ("(parenthesised) [bracketed] {braced} <angled>", "( parenthesised ) [ bracketed ] { braced } < angled >"),
    ("e-mail user@example.com http://example.org/path?q=1&r=2#frag", "email user @ example.com http : / / example.org / path ? q = 1 & r = 2 # frag"),
    ("Mr. Smith's dog's bone. O'Neil's.", "Mr Smith 's dog 's bone . O'Neil 's ."),
    ("1.5% -3.2 +4 5/6 7:30 8,5 9-10 11–12", "1.5 % - 3.2 + 4 5 / 6 7 : 30 8,5 9 - 10 11 – 12"),
    ("UPPER lower MiXeD CamelCase", "upper LOWER mixed camelcase"),
    ("Running runners ran; generalizations, happily, relational conditional", "run runner running generalization happy relate condition"),
    ("caresses ponies ties cats feed agreed plastered motoring sing conflated troubled sized hopping falling hissing fizzed failing filing", "caress poni ti cat feed agre plaster motor sing conflat troubl size hop fall hiss fizz fail file"),
    ("skies dying lying tying news innings outings cannings howe proceed exceed succeed", "sky die lie tie news inning outing canning howe proceed exceed succeed"),
    ("yyyy syzygy toy enjoy happy sky fly try spied", "yyy syzygi toi enjoy happi sky fli tri spi"),
    ("numbers 1990s 2nd 3rd 4th 100000 0.5", "numbers 1990 2 3 4 100 000 0 5"),
    ("hyphen-\nated word\nsplit", "hyphenated word split"),
    ("trailing spaces   ", "trailing spaces"),
    ("   leading spaces", "leading spaces"),
    ("x", "y"),
    ("a b", "a b c d e f g h"),
    ("a b c d e f g h i j k l m n o p", "a b"),
    ("Mixed\u2014dash\u2026and\u20acsymbols\u2122here", "Mixed dash and symbols here"),
    ("Sigma ΣΑΣ ΑΣ. Σ ἈΣ", "sigma σας ας. σ ἀς"),
    ("Tom a fugit.", "Tom a fugit."),
    ("Î, ș, ț, ă, â — diacritice românești.", "Î, ş, ţ, ă, â - diacritice romanesti."),
]

# Multi-line summaries for rougeLsum (one sentence per line).
LSUM_EXTRA = [
    ("the cat sat on the mat.\nthe dog barked at the cat.", "the cat was on the mat.\na dog barked loudly.\nthe end."),
    ("first line\n\nthird line after an empty one\n", "first line\nsecond line\nthird line"),
    ("one\ntwo\nthree\nfour", "four\nthree\ntwo\none"),
    ("repeated words repeated words\nrepeated", "words repeated\nrepeated words words"),
    ("\n\n\n", "something\n"),
    ("a b c d\ne f g h", "a e b f\nc g d h"),
    ("The Quick brown fox.\r\nJumps over\r\nthe lazy dog.", "the quick brown fox jumps\nover the lazy dog"),
]


def read_lines(path):
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line.rstrip("\n") for line in f]


def perturb(sent, rng, vocab):
    """A deterministic 'system output': drop, swap, replace and recase words."""
    words = sent.split()
    out = []
    for w in words:
        r = rng.random()
        if r < 0.08:
            continue
        if r < 0.14:
            out.append(rng.choice(vocab))
            continue
        if r < 0.18:
            w = w.lower() if rng.random() < 0.5 else w.upper()
        out.append(w)
    i = 0
    while i + 1 < len(out):
        if rng.random() < 0.07:
            out[i], out[i + 1] = out[i + 1], out[i]
            i += 2
        else:
            i += 1
    if out and rng.random() < 0.1:
        out[-1] = out[-1] + " ."
    return " ".join(out)


def subsample(n, k, seed):
    rng = random.Random(seed)
    idx = sorted(rng.sample(range(n), min(k, n)))
    return idx


def translation_sets(data):
    tr = os.path.join(data, "translation")
    sets = {}
    ro = read_lines(os.path.join(tr, "tatoeba-en-ro", "test.ro"))
    vocab = sorted({w for s in ro for w in s.split()})
    rng = random.Random(1)
    idx = subsample(len(ro), 250, 11)
    refs = [ro[i] for i in idx]
    sets["tatoeba_ro_perturbed"] = {
        "hyps": [perturb(s, rng, vocab) for s in refs],
        "refs": [[s] for s in refs],
    }
    eng = read_lines(os.path.join(tr, "flores200-devtest", "eng_Latn.devtest"))
    fra = read_lines(os.path.join(tr, "flores200-devtest", "fra_Latn.devtest"))
    deu = read_lines(os.path.join(tr, "flores200-devtest", "deu_Latn.devtest"))
    idx = subsample(len(eng), 120, 12)
    vocab = sorted({w for s in eng for w in s.split()})
    rng = random.Random(2)
    # Two references, the second missing for every third segment.
    hyps, refs = [], []
    for k, i in enumerate(idx):
        hyps.append(perturb(eng[i], rng, vocab))
        second = perturb(eng[i], rng, vocab)
        refs.append([eng[i]] if k % 3 == 0 else [eng[i], second])
    sets["flores_eng_multiref"] = {"hyps": hyps, "refs": refs}
    sets["flores_fra_vs_deu"] = {"hyps": [fra[i] for i in idx[:80]], "refs": [[deu[i]] for i in idx[:80]]}
    fr = read_lines(os.path.join(tr, "tico19-test-en-fr", "tico19-test.fr"))
    idx = subsample(len(fr), 150, 13)
    vocab = sorted({w for s in fr for w in s.split()})
    rng = random.Random(3)
    sets["tico19_fr_perturbed"] = {"hyps": [perturb(fr[i], rng, vocab) for i in idx], "refs": [[fr[i]] for i in idx]}
    sets["adversarial"] = {"hyps": [h for h, _ in ADVERSARIAL], "refs": [[r] for _, r in ADVERSARIAL]}
    # Three references per segment, from rotating the adversarial set.
    n = len(ADVERSARIAL)
    sets["adversarial_3refs"] = {
        "hyps": [h for h, _ in ADVERSARIAL],
        "refs": [[ADVERSARIAL[i][1], ADVERSARIAL[(i + 1) % n][0], ADVERSARIAL[(i + 7) % n][1]] for i in range(n)],
    }
    return sets


def streams(refs):
    """Per-segment reference lists -> sacrebleu's reference streams (None = absent)."""
    k = max(len(r) for r in refs)
    return [[r[j] if j < len(r) else None for r in refs] for j in range(k)]


# --------------------------------------------------------------------------
# BLEU and chrF


def bleu_dict(s, sig):
    return {
        "score": s.score, "counts": list(s.counts), "totals": list(s.totals),
        "precisions": list(s.precisions), "bp": s.bp, "sys_len": s.sys_len,
        "ref_len": s.ref_len, "signature": sig,
    }


def bleu_cases(sets):
    grid = []
    for tok in ["13a", "none", "intl", "char", "zh"]:
        for smooth in ["exp", "none", "floor", "add-k"]:
            for lc in [False, True]:
                grid.append(dict(tokenize=tok, smooth_method=smooth, lowercase=lc))
        grid.append(dict(tokenize=tok, smooth_method="exp", effective_order=True))
        grid.append(dict(tokenize=tok, smooth_method="none", effective_order=True))
    grid += [
        dict(smooth_method="floor", smooth_value=0.05),
        dict(smooth_method="add-k", smooth_value=0.5),
        dict(smooth_method="add-k", smooth_value=2, effective_order=True),
        dict(max_ngram_order=2),
        dict(max_ngram_order=6),
        dict(max_ngram_order=6, smooth_method="floor", effective_order=True),
        dict(max_ngram_order=1, lowercase=True),
    ]
    cases = []
    for name in sorted(sets):
        d = sets[name]
        for opts in grid:
            m = BLEU(**opts)
            s = m.corpus_score(d["hyps"], streams(d["refs"]))
            cases.append({"data": name, "options": opts, "corpus": bleu_dict(s, str(m.get_signature()))})
    return cases


def with_seed(seed, fn):
    """Runs fn with SACREBLEU_SEED set (sacrebleu reads it at resampling)."""
    old = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        return fn()
    finally:
        if old is None:
            del os.environ["SACREBLEU_SEED"]
        else:
            os.environ["SACREBLEU_SEED"] = old


def bootstrap_cases(sets, metric_cls, grid, names):
    out = []
    for name in names:
        d = sets[name]
        for opts in grid:
            for seed, n in [(12345, 1000), (7, 200)]:
                m = metric_cls(**opts)
                s = with_seed(seed, lambda: m.corpus_score(d["hyps"], streams(d["refs"]), n_bootstrap=n))
                out.append({"data": name, "options": opts, "seed": seed, "n_bootstrap": n,
                            "score": s.score, "mean": float(s._mean), "ci": float(s._ci),
                            "signature": str(m.get_signature())})
    return out


def pcg64_checks():
    out = []
    for seed, k in [(12345, 1000), (0, 7), (2**40 + 5, 100000), (2**32 - 1, 3)]:
        rng = np.random.default_rng(seed)
        out.append({"seed": seed, "k": k, "draws": [int(x) for x in rng.choice(k, size=20)]})
    return out


def bleu_sentence_cases(sets):
    grid = [
        dict(),  # sentence_bleu defaults: exp, effective order
        dict(tokenize="intl"), dict(tokenize="zh"), dict(tokenize="char"), dict(tokenize="none"),
        dict(smooth_method="floor"), dict(smooth_method="add-k"), dict(smooth_method="none"),
        dict(use_effective_order=False), dict(lowercase=True),
    ]
    out = []
    for name in ["adversarial", "adversarial_3refs", "tatoeba_ro_perturbed"]:
        d = sets[name]
        n = len(d["hyps"]) if name != "tatoeba_ro_perturbed" else 60
        for opts in grid:
            res = []
            for h, r in zip(d["hyps"][:n], d["refs"][:n]):
                s = sacrebleu.sentence_bleu(h, r, **opts)
                res.append(bleu_dict(s, ""))
            # signature of the sentence metric (same options as sentence_bleu)
            m = BLEU(lowercase=opts.get("lowercase", False), tokenize=opts.get("tokenize", "13a"),
                     smooth_method=opts.get("smooth_method", "exp"),
                     effective_order=opts.get("use_effective_order", True))
            m.sentence_score(d["hyps"][0], d["refs"][0])
            out.append({"data": name, "count": n, "options": opts, "signature": str(m.get_signature()), "sentences": res})
    return out


def chrf_cases(sets):
    grid = [
        dict(), dict(word_order=2), dict(word_order=1), dict(beta=1), dict(beta=3, word_order=2),
        dict(lowercase=True), dict(whitespace=True), dict(whitespace=True, word_order=2),
        dict(eps_smoothing=True), dict(eps_smoothing=True, word_order=2), dict(char_order=4),
        dict(char_order=3, word_order=3, lowercase=True),
    ]
    cases = []
    for name in sorted(sets):
        d = sets[name]
        for opts in grid:
            m = CHRF(**opts)
            s = m.corpus_score(d["hyps"], streams(d["refs"]))
            cases.append({"data": name, "options": opts, "corpus": {"score": s.score, "name": s.name, "signature": str(m.get_signature())}})
    sent = []
    for name in ["adversarial", "adversarial_3refs"]:
        d = sets[name]
        for opts in [dict(), dict(word_order=2), dict(eps_smoothing=True, whitespace=True)]:
            m = CHRF(**opts)
            res = [m.sentence_score(h, r).score for h, r in zip(d["hyps"], d["refs"])]
            sent.append({"data": name, "options": opts, "scores": res})
    return cases, sent


# --------------------------------------------------------------------------
# ROUGE


def rouge_sets(data, tsets):
    sets = {}
    rows = []
    with open(os.path.join(data, "summarization", "scitldr-a", "test.jsonl"), encoding="utf-8") as f:
        for line in f:
            rows.append(json.loads(line))
    idx = subsample(len(rows), 120, 21)
    # Lead-3 prediction (one sentence per line, for rougeLsum) vs all TLDRs.
    sets["scitldr_lead3_multiref"] = {
        "preds": ["\n".join(rows[i]["source"][:3]) for i in idx],
        "targets": [rows[i]["target"] for i in idx],
    }
    # One TLDR as the prediction, the others as targets.
    sets["scitldr_tldr_vs_rest"] = {
        "preds": [rows[i]["target"][0] for i in idx[:80]],
        "targets": [rows[i]["target"][1:] for i in idx[:80]],
    }
    d = tsets["tatoeba_ro_perturbed"]
    sets["tatoeba_ro_perturbed"] = {"preds": d["hyps"][:120], "targets": d["refs"][:120]}
    d = tsets["flores_eng_multiref"]
    sets["flores_eng_multiref"] = {"preds": d["hyps"], "targets": d["refs"]}
    sets["adversarial"] = {
        "preds": [h for h, _ in ADVERSARIAL + LSUM_EXTRA],
        "targets": [[r] for _, r in ADVERSARIAL + LSUM_EXTRA],
    }
    return sets


def score_dict(s):
    return {"precision": s.precision, "recall": s.recall, "fmeasure": s.fmeasure}


def rouge_cases(sets):
    types = ["rouge1", "rouge2", "rouge3", "rouge4", "rouge5", "rouge9", "rougeL", "rougeLsum"]
    cases = []
    for name in sorted(sets):
        d = sets[name]
        for stem in [False, True]:
            sc = rouge_scorer.RougeScorer(types, use_stemmer=stem)
            pairs = [sc.score_multi(t, p) for p, t in zip(d["preds"], d["targets"])]
            mean = {t: score_dict(scoring.Score(*np.mean(np.array([list(p[t]) for p in pairs]), axis=0))) for t in types}
            agg = scoring.BootstrapAggregator()
            for p in pairs:
                agg.add_scores(p)
            np.random.seed(42)
            boot = agg.aggregate()
            cases.append({
                "data": name, "types": types, "use_stemmer": stem,
                "pairs": [{t: score_dict(p[t]) for t in types} for p in pairs],
                "mean": mean,
                "bootstrap": {"seed": 42, "n_samples": 1000, "confidence": 0.95,
                              "result": {t: {k: score_dict(getattr(v, k)) for k in ["low", "mid", "high"]} for t, v in boot.items()}},
            })
    # A type subset, a different seed and fewer samples (checks the random stream).
    d = sets["scitldr_lead3_multiref"]
    types2 = ["rougeLsum", "rouge2"]
    sc = rouge_scorer.RougeScorer(types2, use_stemmer=True)
    pairs = [sc.score_multi(t, p) for p, t in zip(d["preds"], d["targets"])]
    agg = scoring.BootstrapAggregator(confidence_interval=0.9, n_samples=300)
    for p in pairs:
        agg.add_scores(p)
    np.random.seed(2024)
    boot = agg.aggregate()
    cases.append({
        "data": "scitldr_lead3_multiref", "types": types2, "use_stemmer": True,
        "pairs": [{t: score_dict(p[t]) for t in types2} for p in pairs],
        "mean": {t: score_dict(scoring.Score(*np.mean(np.array([list(p[t]) for p in pairs]), axis=0))) for t in types2},
        "bootstrap": {"seed": 2024, "n_samples": 300, "confidence": 0.9,
                      "result": {t: {k: score_dict(getattr(v, k)) for k in ["low", "mid", "high"]} for t, v in boot.items()}},
    })
    return cases


# --------------------------------------------------------------------------
# Unicode tables and the stemmer


def ranges(pred):
    out = []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF or not pred(chr(c)):
            continue
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def unicode_tables():
    lower = {}
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue
        low = chr(c).lower()
        if low != chr(c):
            lower[str(c)] = low
    rx = {n: regex.compile(r"\p{%s}" % n) for n in "NPS"}
    return {
        "isspace": ranges(str.isspace),
        "lower": lower,
        "regex_N": ranges(lambda ch: rx["N"].match(ch) is not None),
        "regex_P": ranges(lambda ch: rx["P"].match(ch) is not None),
        "regex_S": ranges(lambda ch: rx["S"].match(ch) is not None),
        "zh_chinese_char": ranges(TokenizerZh._is_chinese_char),
        "final_sigma": [[s, s.lower()] for s in [
            "Σ", "ΑΣ", "ΑΣ.", "ΑΣΑ", "Α.Σ", "ΑΣ'Α", "Α'Σ", "ΑΣ\u0301", "ΑΣ\u0301Α", "ΣΑΣ ΑΣ", "ἈΣ", "1Σ", "ΑΣ1",
            "ΑΣ\u00adΑ", "Ǆ Σ", "ǅΣ", "ʰΣ", "ΑΣ\u200d", "ΟΔΟΣ ΣΟΦΟΣ", "ΑΣ:Α", "ΑΣ·", "ΑΣ’Α"]],
    }


def porter_words(data, sets):
    words = set()
    for d in sets.values():
        for s in d["hyps"] + [r for rs in d["refs"] for r in rs]:
            words.update(regex.findall(r"[a-z0-9]+", s.lower()))
    with open(os.path.join(data, "summarization", "scitldr-a", "dev.jsonl"), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            for s in row["source"] + row["target"]:
                words.update(regex.findall(r"[a-z0-9]+", s.lower()))
    for path in ["translation/tatoeba-en-ro/train.en", "translation/tico19-test-en-fr/tico19-test.en"]:
        for s in read_lines(os.path.join(data, path)):
            words.update(regex.findall(r"[a-z0-9]+", s.lower()))
    extra = ("caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated troubled sized "
             "hopping tanned falling hissing fizzed failing filing happy sky relational conditional rational "
             "valenci hesitanci digitizer conformabli radicalli differentli vileli analogousli vietnamization "
             "predication operator feudalism decisiveness hopefulness callousness formaliti sensitiviti "
             "sensibiliti triplicate formative formalize electriciti electrical hopeful goodness revival "
             "allowance inference airliner gyroscopic adjustable defensible irritant replacement adjustment "
             "dependent adoption homologou communism activate angulariti homologous effective bowdlerize "
             "probate rate cease controll roll generalizations oscillators yyyy syzygy toy enjoy spied "
             "dying lying tying news innings outings cannings howe proceed exceed succeed skies fulli "
             "hopefulli analogi apologi biologi yyyyying eed feed need bleed ied tied cried studied "
             "ies dies lies eies").split()
    words.update(extra)
    words = sorted(w for w in words if len(w) > 3)
    st = porter.PorterStemmer()
    return {w: st.stem(w) for w in words}


def dump(obj, path):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "testdata", "metrics"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    meta = {
        "command": COMMAND,
        "python": sys.version.split()[0],
        "versions": {p: version(p) for p in ["sacrebleu", "rouge-score", "nltk", "numpy", "regex"]},
    }
    tsets = translation_sets(args.data)
    boot_names = ["tatoeba_ro_perturbed", "flores_eng_multiref", "adversarial_3refs"]
    dump({"meta": meta, "datasets": tsets, "corpus": bleu_cases(tsets), "sentence": bleu_sentence_cases(tsets),
          "bootstrap": bootstrap_cases(tsets, BLEU, [dict(), dict(tokenize="intl", smooth_method="floor"),
                                                     dict(smooth_method="add-k", effective_order=True),
                                                     dict(max_ngram_order=2, lowercase=True)], boot_names),
          "pcg64": pcg64_checks()},
         os.path.join(args.out, "bleu.json"))
    cases, sent = chrf_cases(tsets)
    boot = bootstrap_cases(tsets, CHRF, [dict(), dict(word_order=2), dict(eps_smoothing=True, beta=1)],
                           ["tatoeba_ro_perturbed", "flores_eng_multiref", "adversarial_3refs"])
    dump({"meta": meta, "datasets": tsets, "corpus": cases, "sentence": sent, "bootstrap": boot},
         os.path.join(args.out, "chrf.json"))
    rsets = rouge_sets(args.data, tsets)
    dump({"meta": meta, "datasets": rsets, "cases": rouge_cases(rsets)}, os.path.join(args.out, "rouge.json"))
    dump({"meta": meta, **unicode_tables()}, os.path.join(args.out, "pyunicode.json"))
    dump({"meta": meta, "stems": porter_words(args.data, tsets)}, os.path.join(args.out, "porter.json"))


if __name__ == "__main__":
    main()
