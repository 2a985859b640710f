#!/usr/bin/env python3
"""Reference token ids and decoded text from Hugging Face tokenizers.

Encodes every sentence of every corpus in ../shared/data with the model's own
HF tokenizer (T5TokenizerFast for FLAN-T5, BartTokenizerFast for BART,
MarianTokenizer (sentencepiece) for OPUS-MT en-mg, source and target side;
plus FLAN-T5's tokenizer.json read by the tokenizers library itself)
and writes, per tokenizer and corpus, a digest of the ids of every sentence and of
the text that tokenizer.decode(ids, skip_special_tokens=True) returns (full ids
for every SAMPLE_EVERY-th sentence): the full ids of all corpora would be 12 MB
even gzip-compressed. The Go tests in
tokenize/ read the same corpora and compare sentence by sentence.

Usage: .venv/bin/python scripts/refs/tokenizer_refs.py [--shared ../shared/data] [--out testdata/tokenizers]

Output (deterministic, sorted keys):
  testdata/tokenizers/<tok>.json.gz  per corpus: count, text_sha256, "sums" (base64 of 8 bytes per
                                     sentence: ids digest + decoded-text digest, see ids_digest/text_digest),
                                     and the full ids and decoded text of every SAMPLE_EVERY-th sentence
  testdata/tokenizers/cases.json              edge cases and truncation, full ids, plus the
                                              generating command and package versions
Corpus texts are extracted by corpus_texts() below; tokenize/parity_test.go
mirrors that rule exactly.
"""
import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import sys

import sentencepiece
import tokenizers
import transformers
from transformers import BartTokenizerFast, MarianTokenizer, T5TokenizerFast


def read_lines(path):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def corpus_texts(shared):
    """Yields (corpus name, list of texts) in a fixed order."""
    t = os.path.join(shared, "translation")
    for split in ("train", "dev", "test"):
        for lang in ("en", "ro"):
            yield f"tatoeba-en-ro.{split}.{lang}", read_lines(os.path.join(t, "tatoeba-en-ro", f"{split}.{lang}"))
    for lang in ("eng", "deu", "fra", "ron"):
        yield f"flores200.{lang}", read_lines(os.path.join(t, "flores200-devtest", f"{lang}_Latn.devtest"))
    for lang in ("en", "fr"):
        yield f"tico19.{lang}", read_lines(os.path.join(t, "tico19-test-en-fr", f"tico19-test.{lang}"))
    s = os.path.join(shared, "summarization", "scitldr-a")
    for split in ("train", "dev", "test"):
        recs = [json.loads(l) for l in read_lines(os.path.join(s, f"{split}.jsonl"))]
        yield f"scitldr.{split}.source", [x for r in recs for x in r["source"]]
        # The model input: source sentences joined with single spaces.
        yield f"scitldr.{split}.document", [" ".join(r["source"]) for r in recs]
        yield f"scitldr.{split}.target", [x for r in recs for x in r["target"]]


def load_tokenizers(shared):
    tk = os.path.join(shared, "tokenizers")
    t5 = T5TokenizerFast.from_pretrained(os.path.join(tk, "flan-t5-small"))
    bart = BartTokenizerFast.from_pretrained(os.path.join(tk, "distilbart-cnn-6-6"))
    marian = MarianTokenizer.from_pretrained(os.path.join(tk, "opus-mt-en-mg"))
    # The file as the tokenizers library reads it (Replace regex normalizer,
    # legacy Metaspace): transformers 5's T5Tokenizer rebuilds that pipeline.
    raw_t5 = tokenizers.Tokenizer.from_file(os.path.join(tk, "flan-t5-small", "tokenizer.json"))

    def raw_encode(x, truncation=False, max_length=None):
        if truncation:
            raw_t5.enable_truncation(max_length)
        else:
            raw_t5.no_truncation()
        return raw_t5.encode(x).ids

    class RawDecode:
        decode = staticmethod(lambda ids, skip_special_tokens: raw_t5.decode(ids, skip_special_tokens=skip_special_tokens))

    return {
        "flan-t5-small": (lambda x, **kw: t5(x, **kw)["input_ids"], t5),
        "flan-t5-small.tokenizer-json": (raw_encode, RawDecode),
        "distilbart-cnn-6-6": (lambda x, **kw: bart(x, **kw)["input_ids"], bart),
        "opus-mt-en-mg.source": (lambda x, **kw: marian(x, **kw)["input_ids"], marian),
        "opus-mt-en-mg.target": (lambda x, **kw: marian(text_target=x, **kw)["input_ids"], marian),
    }


EDGE_CASES = [
    "", " ", "   ", "Hello world", "  Hello   world  ", "Hello\tworld\nagain", "\n", "a\u00a0b",
    "ﬁne ﬂow", "Ｆｕｌｌ－ｗｉｄｔｈ １２３", "café naïve résumé", "Ştiinţă şi știință", "ÀÉÎÕÜ",
    "Emoji 😀👍🏽 test", "中文字符 和 日本語", "Ελληνικά Русский", "<s> literal </s> tokens <pad>",
    "price: $3.50 (approx.) — 50% off!", "it's don't they're", "x\u200by zero width", "\u0301accent first",
    "tabs\t\tand  double  spaces", "end with space ", "{braces} [brackets] ~tilde~", "1234567890 3.14159",
    "a" * 300, "Ω ≈ ç √ ∫ µ", "\u2581already metaspace", "Ġbyte level", "ǅ ǈ ǋ ﬀ ﬃ ㎏ ½ ¼ ²",
    "COVID-19 SARS-CoV-2", ">>fra<< language code", "line one\r\nline two",
]


RANDOM_PARTS = ["a", "Z", " ", "  ", "\t", "\n", "\u00a0", "\u200b", "\u0301", "\u0000", "\u001f", "é", "ß", "ﬁ",
                "中", "ア", "한", "😀", "👍🏽", "<s>", "</s>", "<pad>", "<unk>", "<extra_id_0>", ">>fr<<", "▁", "Ġ", "'s",
                "\ufffd", "\U0010ffff", "١٢", "ǅ", "Ω", ".", "!!", "-", "\r\n", "<mask>", "[UNK]", "e\u0301\u0302",
                "ﬃ\u0308", "Ａ", "ｶ\uff9e", "\u3000", "\u2028", "ǰ\u0323", "\U0001F1EB\U0001F1F7", "x"]


def random_texts():
    """Seeded random strings of awkward pieces (same for every tokenizer)."""
    import random
    r = random.Random(20261127)
    return ["".join(r.choice(RANDOM_PARTS) for _ in range(r.randrange(30))) for _ in range(250)]


SAMPLE_EVERY = 50


def ids_digest(ids):
    """First 4 bytes of SHA-256 over the ids written in decimal, comma separated."""
    return hashlib.sha256(",".join(map(str, ids)).encode()).digest()[:4]


def text_digest(text):
    """First 4 bytes of SHA-256 over the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).digest()[:4]


def gzip_json(doc):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9, filename="") as g:
        g.write(json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode())
    return buf.getvalue()


def encode_all(fn, texts, **kw):
    return [list(map(int, fn(x, **kw))) for x in texts]


def collate_refs(shared, corpora):
    """DataCollatorForSeq2Seq batches (labels padded with -100, decoder
    inputs by shift_tokens_right) for the first tatoeba training pairs."""
    from transformers import DataCollatorForSeq2Seq
    from transformers.models.bart.modeling_bart import shift_tokens_right
    import torch
    src = dict(corpora)["tatoeba-en-ro.train.en"][:5]
    tgt = dict(corpora)["tatoeba-en-ro.train.ro"][:5]
    tk = os.path.join(shared, "tokenizers")
    out = {}
    for name, tok, prefix, start in [
        ("flan-t5-small", T5TokenizerFast.from_pretrained(os.path.join(tk, "flan-t5-small")), "translate English to Romanian: ", 0),
        ("opus-mt-en-mg", MarianTokenizer.from_pretrained(os.path.join(tk, "opus-mt-en-mg")), "", 54687),
    ]:
        feats = []
        for s_, t_ in zip(src, tgt):
            enc = tok(prefix + s_, max_length=12, truncation=True)
            enc["labels"] = tok(text_target=t_, max_length=6, truncation=True)["input_ids"]
            feats.append(dict(enc))
        batch = DataCollatorForSeq2Seq(tok, label_pad_token_id=-100, return_tensors="pt")(feats)
        dec = shift_tokens_right(batch["labels"], tok.pad_token_id, start)
        out[name] = {"prefix": prefix, "max_source_length": 12, "max_target_length": 6, "decoder_start_token_id": start,
                     "sources": src, "targets": tgt,
                     "input_ids": batch["input_ids"].tolist(), "attention_mask": batch["attention_mask"].tolist(),
                     "labels": batch["labels"].tolist(), "decoder_input_ids": dec.tolist()}
    return out


VARIANT_TEXTS = ["Hello world", " leading space", "two  spaces", "Hello </s> world", "</s>after", "", "▁x y"]


def metaspace_variants(shared):
    """FLAN-T5's tokenizer.json with a modern Metaspace (prepend_scheme
    always / first / never) as pre-tokenizer and decoder; tokenize/
    builds the same variants in memory."""
    with open(os.path.join(shared, "tokenizers", "flan-t5-small", "tokenizer.json"), encoding="utf-8") as f:
        base = json.load(f)
    out = {}
    for scheme in ("always", "first", "never"):
        d = json.loads(json.dumps(base))
        ms = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": True}
        d["pre_tokenizer"] = ms
        d["decoder"] = ms
        tok = tokenizers.Tokenizer.from_str(json.dumps(d))
        ids = [tok.encode(x).ids for x in VARIANT_TEXTS]
        out[scheme] = {"texts": VARIANT_TEXTS, "ids": ids,
                       "decoded": [tok.decode(i, skip_special_tokens=True) for i in ids],
                       "decoded_with_special": [tok.decode(i, skip_special_tokens=False) for i in ids]}
    return out


NORMALIZER_VARIANT = [
    {"type": "NFD"}, {"type": "StripAccents"}, {"type": "Lowercase"},
    {"type": "Strip", "strip_left": True, "strip_right": True},
    {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
    {"type": "Replace", "pattern": {"String": "``"}, "content": "\""}, {"type": "NFKC"},
]


def normalizer_variant(shared, corpora):
    """BART's tokenizer.json with a normalizer sequence (NFD, StripAccents,
    Lowercase, Strip, Replace regex and string, NFKC) and ByteLevel with
    add_prefix_space; tokenize/ builds the same variant in memory."""
    with open(os.path.join(shared, "tokenizers", "distilbart-cnn-6-6", "tokenizer.json"), encoding="utf-8") as f:
        d = json.load(f)
    d["normalizer"] = {"type": "Sequence", "normalizers": NORMALIZER_VARIANT}
    d["pre_tokenizer"]["add_prefix_space"] = True
    tok = tokenizers.Tokenizer.from_str(json.dumps(d))
    c = dict(corpora)
    texts = c["flores200.fra"][:150] + c["flores200.deu"][:150] + c["scitldr.dev.source"][:100] + EDGE_CASES + random_texts()
    ids = [tok.encode(x).ids for x in texts]
    return {"texts": texts, "ids": ids, "decoded": [tok.decode(i, skip_special_tokens=True) for i in ids]}


def wordpiece_refs(shared, corpora, out_dir):
    """A small WordPiece tokenizer (BERT normalizer and pre-tokenizer) trained
    here on Tatoeba English, saved to testdata/tokenizers/wordpiece-tatoeba.json,
    and its encodings of the English corpora."""
    from tokenizers import Tokenizer
    path = os.path.join(out_dir, "wordpiece-tatoeba.json")
    if os.path.exists(path):
        # Training is not deterministic across runs; reuse the committed file.
        tok = Tokenizer.from_file(path)
    else:
        tok = train_wordpiece(corpora, path)
    texts = dict(corpora)["tatoeba-en-ro.test.en"][:300] + dict(corpora)["flores200.eng"][:100] + EDGE_CASES
    ids = [tok.encode(x).ids for x in texts]
    return {"file": "wordpiece-tatoeba.json", "texts": texts, "ids": ids,
            "decoded": [tok.decode(i, skip_special_tokens=True) for i in ids]}


def train_wordpiece(corpora, path):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=30))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=1500, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"], show_progress=False)
    tok.train_from_iterator(dict(corpora)["tatoeba-en-ro.train.en"], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.save(path)
    return tok


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(root), "shared", "data"))
    ap.add_argument("--out", default=os.path.join(root, "testdata", "tokenizers"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    toks = load_tokenizers(args.shared)
    corpora = list(corpus_texts(args.shared))
    meta = {
        "command": "python scripts/refs/tokenizer_refs.py",
        "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                     "sentencepiece": sentencepiece.__version__, "python": sys.version.split()[0]},
    }
    cases = {"meta": meta, "tokenizers": {}}
    summary = {}
    for name, (fn, tok) in toks.items():
        out = {"meta": meta, "tokenizer": name, "sample_every": SAMPLE_EVERY, "corpora": {}}
        for corpus, texts in corpora:
            ids = encode_all(fn, texts)
            decoded = [tok.decode(x, skip_special_tokens=True) for x in ids]
            sums = b"".join(ids_digest(i) + text_digest(d) for i, d in zip(ids, decoded))
            out["corpora"][corpus] = {
                "count": len(texts),
                "text_sha256": hashlib.sha256("\n".join(texts).encode()).hexdigest(),
                "sums": base64.b64encode(sums).decode(),
                "sample": {str(k): {"ids": ids[k], "decoded": decoded[k]} for k in range(0, len(texts), SAMPLE_EVERY)},
            }
            summary[f"{name}.{corpus}"] = len(texts)
        with open(os.path.join(args.out, f"{name}.json.gz"), "wb") as f:
            f.write(gzip_json(out))
        ec = {"texts": EDGE_CASES + random_texts(), "ids": encode_all(fn, EDGE_CASES + random_texts())}
        ec["decoded"] = [tok.decode(x, skip_special_tokens=True) for x in ec["ids"]]
        ec["decoded_with_special"] = [tok.decode(x, skip_special_tokens=False) for x in ec["ids"]]
        # Truncation as a data collator would ask for it.
        trunc_texts = [t for _, ts in corpora[:1] for t in ts[:20]] + EDGE_CASES
        ec["truncation"] = {"max_length": 8, "texts": trunc_texts,
                            "ids": encode_all(fn, trunc_texts, truncation=True, max_length=8)}
        cases["tokenizers"][name] = ec
    cases["corpora"] = summary
    cases["collate"] = collate_refs(args.shared, corpora)
    cases["metaspace_variants"] = metaspace_variants(args.shared)
    cases["normalizer_variant"] = normalizer_variant(args.shared, corpora)
    cases["wordpiece"] = wordpiece_refs(args.shared, corpora, args.out)
    with open(os.path.join(args.out, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
