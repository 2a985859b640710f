#!/usr/bin/env python3
"""HF references for the multilingual fixtures of testdata/multilingual
(scripts/fixtures/make_multilingual_models.py).

generate.json: HF generate() on m2m100-tiny and mbart-tiny from batches of
  source ids (batch 1, and batch 6 with unequal lengths, right-padded with an
  attention mask), greedy and beam options, each as the model generates by
  default and with the target language as run_translation / the HF docs ask
  (M2M100: forced_bos_token_id = the target language token; mBART:
  decoder_start_token_id = the target language code). Each case records the
  sequences, beam scores, how many sequences hold a pad id before their end
  of sequence token, and whether generate(use_cache=False) gives the same
  sequences (for M2M100 it does not once a pad id is generated: without a
  cache the positions skip pad ids, with one they do not).

batches.json: the first training pairs of Tatoeba en-ro
  (testdata/realdata/translation/tatoeba-en-ro/train.*, also written to
  testdata/multilingual/train.jsonl as {"translation": {"en", "ro"}} records)
  tokenized as run_translation does — tokenizer(sources, max_length,
  truncation) and tokenizer(text_target=targets, ...) with src_lang / tgt_lang
  set — collated by DataCollatorForSeq2Seq(tokenizer, model=model), and the
  model's loss on that batch; for mBART also the loss of the batch ortrain
  built before language codes were wired (labels with the source template,
  decoder inputs shifted behind decoder_start_token_id), to show the size of
  that error.

predict.json: what `ortrain predict --source-lang --target-lang` must write
  for those sources (HF generate() with the target language, greedy and 3
  beams, decoded with skip_special_tokens=True).

Usage: .venv/bin/python scripts/refs/multilingual_refs.py
"""
import json
import os
import sys

import numpy as np
import torch
import transformers
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, DataCollatorForSeq2Seq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures"))
import fixturelib as fl  # noqa: E402

ROOT = os.path.join(fl.TESTDATA, "multilingual")
TOKENIZERS = os.path.join(fl.TESTDATA, "tokenizers", "multilingual")
MODELS = ("m2m100-tiny", "mbart-tiny")
CONTENT = (10, 60)

OPTIONS = [
    ("greedy", {}),
    ("greedy_max_new_tokens24", {"max_new_tokens": 24}),
    ("greedy_repetition_penalty1.3", {"repetition_penalty": 1.3}),
    ("beam4", {"num_beams": 4}),
    ("beam4_nrs2", {"num_beams": 4, "num_return_sequences": 2}),
    ("beam3_lp0.6_es_true", {"num_beams": 3, "length_penalty": 0.6, "early_stopping": True}),
]


def sources(rng, n, lang_first, src_lang):
    out = []
    for _ in range(n):
        content = rng.integers(*CONTENT, size=int(rng.integers(3, 12))).tolist()
        out.append([src_lang] + content + [2] if lang_first else content + [2, src_lang])
    return out


def pads_inside(seq, pad, eos):
    body = seq[1:]
    if eos in body:
        body = body[: body.index(eos)]
    return pad in body


def generate_refs(rng):
    doc = {}
    for name in MODELS:
        path = os.path.join(ROOT, name)
        with open(os.path.join(path, "refs.json")) as f:
            meta = json.load(f)["languages"]
        model = AutoModelForSeq2SeqLM.from_pretrained(path, attn_implementation="eager").eval()
        cfg = model.config
        lang_first = name.startswith("m2m100")
        batches = {"b1": sources(rng, 1, lang_first, meta["source_lang_id"]),
                   "b6": sources(rng, 6, lang_first, meta["source_lang_id"])}
        target = ({"forced_bos_token_id": meta["target_lang_id"]} if lang_first
                  else {"decoder_start_token_id": meta["target_lang_id"]})
        # mBART's config has no decoder_start_token_id: generation needs one.
        default = {} if lang_first else {"decoder_start_token_id": cfg.eos_token_id}
        cases = []
        for lang_name, lang_kwargs in (("model", default), ("target_lang", target)):
            for opt_name, kwargs in OPTIONS:
                kw = dict(kwargs, **lang_kwargs)
                for bname, src in batches.items():
                    width = max(len(s) for s in src)
                    ids = torch.tensor([s + [cfg.pad_token_id] * (width - len(s)) for s in src])
                    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in src])
                    with torch.no_grad():
                        out = model.generate(input_ids=ids, attention_mask=mask, return_dict_in_generate=True,
                                             output_scores=True, **kw)
                        nocache = model.generate(input_ids=ids, attention_mask=mask, use_cache=False, **kw)
                    seqs = out.sequences.tolist()
                    rec = {"name": f"{lang_name}/{opt_name}/{bname}", "kwargs": kw, "batch": bname, "sequences": seqs,
                           "with_pad_inside": sum(pads_inside(s, cfg.pad_token_id, cfg.eos_token_id) for s in seqs),
                           "use_cache_false_equal": nocache.tolist() == seqs}
                    if getattr(out, "sequences_scores", None) is not None:
                        rec["sequences_scores"] = [float(x) for x in out.sequences_scores.tolist()]
                    cases.append(rec)
        doc[name] = {"sources": batches, "cases": cases}
        n = sum(len(c["sequences"]) for c in cases)
        print(f"{name}: {len(cases)} cases, {n} sequences, {sum(c['with_pad_inside'] for c in cases)} with a pad id inside, "
              f"{sum(not c['use_cache_false_equal'] for c in cases)} cases where use_cache=False differs")
    return doc


def read_lines(path, n):
    with open(path, encoding="utf-8") as f:
        return [next(f).rstrip("\n") for _ in range(n)]


PAIRS = 6
MAX_SOURCE_LENGTH, MAX_TARGET_LENGTH = 12, 9


def batch_refs():
    tr = os.path.join(fl.TESTDATA, "realdata", "translation", "tatoeba-en-ro")
    # Pairs 40.. have a few longer sentences, so truncation is exercised.
    src = read_lines(os.path.join(tr, "train.en"), 40 + PAIRS)[40:]
    tgt = read_lines(os.path.join(tr, "train.ro"), 40 + PAIRS)[40:]
    with open(os.path.join(ROOT, "train.jsonl"), "w", encoding="utf-8") as f:
        for s, t in zip(src, tgt):
            f.write(json.dumps({"translation": {"en": s, "ro": t}}, ensure_ascii=False) + "\n")
    doc = {"sources": src, "targets": tgt, "max_source_length": MAX_SOURCE_LENGTH, "max_target_length": MAX_TARGET_LENGTH}
    for name, tok_name, sl, tl in (("mbart-tiny", "mbart", "en_XX", "ro_RO"), ("m2m100-tiny", "m2m100", "en", "ro")):
        model = AutoModelForSeq2SeqLM.from_pretrained(os.path.join(ROOT, name), attn_implementation="eager").eval()
        tok = AutoTokenizer.from_pretrained(os.path.join(TOKENIZERS, tok_name))
        tok.src_lang, tok.tgt_lang = sl, tl  # as run_translation sets them
        enc = tok(src, max_length=MAX_SOURCE_LENGTH, truncation=True)
        labels = tok(text_target=tgt, max_length=MAX_TARGET_LENGTH, truncation=True)["input_ids"]
        feats = [{"input_ids": i, "attention_mask": m, "labels": l} for i, m, l in zip(enc["input_ids"], enc["attention_mask"], labels)]
        batch = DataCollatorForSeq2Seq(tok, model=model, label_pad_token_id=-100, return_tensors="pt")(feats)
        with torch.no_grad():
            loss = float(model(**batch).loss)
        if "decoder_input_ids" not in batch:
            # No prepare_decoder_input_ids_from_labels (M2M100): the forward
            # shifts the labels itself, with its module's shift_tokens_right.
            shift = sys.modules[type(model).__module__].shift_tokens_right
            batch["decoder_input_ids"] = shift(batch["labels"], model.config.pad_token_id, model.config.decoder_start_token_id)
        rec = {"tokenizer": tok_name, "source_lang": sl, "target_lang": tl, "loss": np.float32(loss),
               **{k: batch[k].tolist() for k in ("input_ids", "attention_mask", "labels", "decoder_input_ids")}}
        if name == "mbart-tiny":
            # The batch ortrain made before: labels with the source template,
            # shift behind decoder_start_token_id (absent: the pad id).
            old = tok(src, max_length=MAX_TARGET_LENGTH, truncation=True)  # source mode = source template
            old_feats = [{"input_ids": i, "attention_mask": m, "labels": l}
                         for i, m, l in zip(enc["input_ids"], enc["attention_mask"], tok(tgt, max_length=MAX_TARGET_LENGTH, truncation=True)["input_ids"])]
            del old
            ob = DataCollatorForSeq2Seq(tok, label_pad_token_id=-100, return_tensors="pt")(old_feats)
            start = model.config.decoder_start_token_id if model.config.decoder_start_token_id is not None else model.config.pad_token_id
            dec = torch.full_like(ob["labels"], model.config.pad_token_id)
            dec[:, 0] = start
            dec[:, 1:] = ob["labels"][:, :-1]
            dec = dec.masked_fill(dec == -100, model.config.pad_token_id)
            with torch.no_grad():
                old_loss = float(model(input_ids=ob["input_ids"], attention_mask=ob["attention_mask"], decoder_input_ids=dec,
                                       labels=ob["labels"]).loss)
            rec["source_template_labels"] = ob["labels"].tolist()
            rec["source_template_loss"] = np.float32(old_loss)
            print(f"{name}: loss {loss:.6f}; with source-template labels and a plain shift {old_loss:.6f}")
        else:
            print(f"{name}: loss {loss:.6f}")
        doc[name] = rec
    return doc


def predict_refs():
    """What `ortrain predict` must write: per model, six source texts made
    by decoding random copy-task token ids (so that the tiny models see
    what they were trained on), encoded with the tokenizer's source
    template, HF generate() with the target language (M2M100:
    forced_bos_token_id; mBART: decoder_start_token_id), greedy and 3 beams,
    decoded with skip_special_tokens=True."""
    rng = np.random.default_rng(5)
    out = {}
    for name, tok_name, sl, tl in (("mbart-tiny", "mbart", "en_XX", "ro_RO"), ("m2m100-tiny", "m2m100", "en", "ro")):
        model = AutoModelForSeq2SeqLM.from_pretrained(os.path.join(ROOT, name), attn_implementation="eager").eval()
        tok = AutoTokenizer.from_pretrained(os.path.join(TOKENIZERS, tok_name), src_lang=sl, tgt_lang=tl)
        src = [tok.decode(rng.integers(*CONTENT, size=int(rng.integers(4, 10))).tolist()).strip() for _ in range(6)]
        lang = tok.get_lang_id(tl) if hasattr(tok, "get_lang_id") else tok.convert_tokens_to_ids(tl)
        kw = {"forced_bos_token_id": lang} if name.startswith("m2m100") else {"decoder_start_token_id": lang}
        enc = tok(src, padding=True, return_tensors="pt")
        rec = {"tokenizer": tok_name, "source_lang": sl, "target_lang": tl, "kwargs": kw, "sources": src}
        for beams in (1, 3):
            with torch.no_grad():
                ids = model.generate(**enc, num_beams=beams, **kw)
            rec[f"num_beams={beams}"] = tok.batch_decode(ids, skip_special_tokens=True)
        out[name] = rec
    return out


def main():
    torch.manual_seed(0)
    meta = {"command": fl.command(), "versions": fl.versions("torch", "transformers", "numpy")}
    gen = generate_refs(np.random.default_rng(11))
    fl.write_json(os.path.join(ROOT, "generate.json"), dict(meta, models=gen), indent=0)
    fl.write_json(os.path.join(ROOT, "batches.json"), dict(meta, **batch_refs()))
    fl.write_json(os.path.join(ROOT, "predict.json"), dict(meta, **predict_refs()))


if __name__ == "__main__":
    main()
