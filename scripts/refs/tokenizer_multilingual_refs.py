#!/usr/bin/env python3
"""Reference ids of transformers' multilingual tokenizer classes on the
folders of testdata/tokenizers/multilingual (scripts/fixtures/make_multilingual_tokenizers.py).

For each tokenizer kind (M2M100Tokenizer, MBartTokenizer, MBart50Tokenizer,
NllbTokenizer, and NllbTokenizer with legacy_behaviour) the folders of that kind
are loaded with AutoTokenizer.from_pretrained(folder, src_lang=..., tgt_lang=...)
and every sentence of the committed corpus samples (testdata/realdata, the
texts of tokenizer_refs.corpus_texts) is encoded as a source (tokenizer(text))
and as a target (tokenizer(text_target=text)) and the source ids decoded
(skip_special_tokens=True). Every folder of a kind must give the same results
(the script stops otherwise); the file holds them once per kind:

  per corpus: count, text_sha256, digest = sha256 over the lines
      "<source ids>|<target ids>|<decoded>" (ids comma separated) joined by "\\n",
      sums = base64 of the first 3 bytes of sha256 of each line (to count
      mismatching sentences), and the full ids of every SAMPLE_EVERY-th sentence;
  cases: tokenizer_refs.EDGE_CASES + random_texts() with source and target ids
      and decodings with and without special tokens; truncation to 8 tokens;
      other language pairs. (nllb-legacy: cases only.)

Usage: .venv/bin/python scripts/refs/tokenizer_multilingual_refs.py
Output: testdata/tokenizers/multilingual.json.gz (deterministic).
"""
import base64
import hashlib
import json
import os
import shutil
import sys
import tempfile

import sentencepiece
import tokenizers
import transformers
from transformers import AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures"))
import fixturelib as fl  # noqa: E402
from tokenizer_refs import EDGE_CASES, corpus_texts, gzip_json, random_texts  # noqa: E402

ROOT = os.path.join(fl.TESTDATA, "tokenizers", "multilingual")
SAMPLE_EVERY = 100

# kind -> (folders, source language, target language, other language pairs, config overrides).
# nllb-legacy differs from nllb only in the template; it gets the cases, not the corpora.
KINDS = {
    "m2m100": (["m2m100"], "en", "ro", [("fr", "de"), ("ro", "en")], {}),
    "mbart": (["mbart", "mbart-spm", "mbart-v4json"], "en_XX", "ro_RO", [("de_DE", "fr_XX"), ("ro_RO", "en_XX")], {}),
    "mbart50": (["mbart50", "mbart50-spm"], "en_XX", "ro_RO", [("de_DE", "sl_SI"), ("ro_RO", "en_XX")], {}),
    "nllb": (["nllb"], "eng_Latn", "ron_Latn", [("fra_Latn", "deu_Latn"), ("ron_Latn", "eng_Latn")], {}),
    "nllb-legacy": (["nllb"], "eng_Latn", "ron_Latn", [("fra_Latn", "deu_Latn")], {"legacy_behaviour": True}),
}


def csv(ids):
    return ",".join(map(str, ids))


def load(folder, overrides, tmp, **kw):
    path = os.path.join(ROOT, folder)
    if overrides:
        # A copy of the folder with tokenizer_config.json changed (the Go tests do the same).
        path = os.path.join(tmp, folder + "-" + "-".join(sorted(overrides)))
        if not os.path.exists(path):
            shutil.copytree(os.path.join(ROOT, folder), path)
            cfg_path = os.path.join(path, "tokenizer_config.json")
            with open(cfg_path, encoding="utf-8") as f:
                cfg = json.load(f)
            cfg.update(overrides)
            with open(cfg_path, "w", encoding="utf-8") as f:
                json.dump(cfg, f)
    return AutoTokenizer.from_pretrained(path, **kw)


def run_kind(folders, src, tgt, pairs, overrides, corpora, tmp):
    results = []
    for folder in folders:
        tok = load(folder, overrides, tmp, src_lang=src, tgt_lang=tgt)
        out = {"class": type(tok).__name__, "corpora": {}}
        for name, texts in corpora if not overrides else []:
            lines, sums, sample = [], b"", {}
            for k, x in enumerate(texts):
                s = tok(x)["input_ids"]
                t = tok(text_target=x)["input_ids"]
                d = tok.decode(s, skip_special_tokens=True)
                line = f"{csv(s)}|{csv(t)}|{d}"
                lines.append(line)
                sums += hashlib.sha256(line.encode("utf-8")).digest()[:3]
                if k % SAMPLE_EVERY == 0:
                    sample[str(k)] = {"source": s, "target": t, "decoded": d}
            out["corpora"][name] = {
                "count": len(texts),
                "text_sha256": hashlib.sha256("\n".join(texts).encode()).hexdigest(),
                "digest": hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest(),
                "sums": base64.b64encode(sums).decode(),
                "sample": sample,
            }
        texts = EDGE_CASES + random_texts()
        cases = {"texts": texts, "source": [], "target": [], "decoded": [], "decoded_with_special": [],
                 "target_decoded_with_special": []}
        for x in texts:
            s, t = tok(x)["input_ids"], tok(text_target=x)["input_ids"]
            cases["source"].append(s)
            cases["target"].append(t)
            cases["decoded"].append(tok.decode(s, skip_special_tokens=True))
            cases["decoded_with_special"].append(tok.decode(s, skip_special_tokens=False))
            cases["target_decoded_with_special"].append(tok.decode(t, skip_special_tokens=False))
        trunc = corpora[0][1][:20] + EDGE_CASES
        cases["truncation"] = {"max_length": 8, "texts": trunc,
                               "source": [tok(x, max_length=8, truncation=True)["input_ids"] for x in trunc],
                               "target": [tok(text_target=x, max_length=8, truncation=True)["input_ids"] for x in trunc]}
        cases["pairs"] = []
        for a, b in pairs:
            other = load(folder, overrides, tmp, src_lang=a, tgt_lang=b)
            few = corpora[0][1][:10] + EDGE_CASES[:10]
            cases["pairs"].append({"source_lang": a, "target_lang": b, "texts": few,
                                   "source": [other(x)["input_ids"] for x in few],
                                   "target": [other(text_target=x)["input_ids"] for x in few]})
        lang_id = tok.get_lang_id if hasattr(tok, "get_lang_id") else tok.convert_tokens_to_ids  # M2M100: "en" -> "__en__"
        special = {"source_lang": lang_id(src), "target_lang": lang_id(tgt)}
        special.update({k: getattr(tok, k + "_id") for k in ("pad_token", "eos_token", "bos_token", "unk_token")})
        out["cases"] = cases
        out["special_ids"] = special
        out["vocab_size"] = len(tok)
        results.append(out)
    first = json.dumps(results[0], sort_keys=True)
    for folder, r in zip(folders[1:], results[1:]):
        if json.dumps(r, sort_keys=True) != first:
            raise SystemExit(f"{folder} gives other ids than {folders[0]}")
    return results[0]


def main():
    realdata = os.path.join(fl.TESTDATA, "realdata")
    corpora = list(corpus_texts(realdata))
    doc = {
        "command": fl.command(),
        "versions": fl.versions("transformers", "tokenizers", "sentencepiece"),
        "sample_every": SAMPLE_EVERY,
        "kinds": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for kind, (folders, src, tgt, pairs, overrides) in KINDS.items():
            r = run_kind(folders, src, tgt, pairs, overrides, corpora, tmp)
            r.update(folders=folders, source_lang=src, target_lang=tgt, config_overrides=overrides)
            doc["kinds"][kind] = r
            n = sum(c["count"] for c in r["corpora"].values())
            print(f"{kind}: {r['class']} on {folders}: {n} sentences")
    out = os.path.join(fl.TESTDATA, "tokenizers", "multilingual.json.gz")
    with open(out, "wb") as f:
        f.write(gzip_json(doc))
    print(out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
