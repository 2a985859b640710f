#!/usr/bin/env python3
"""End-to-end references for `ortrain predict` on the tiny T5 fixture.

Writes testdata/generate/predict/:
  tokenizer.json  a WordLevel tokenizer over the fixture's 512 ids ("<pad>" 0,
                  "</s>" 1, "<unk>" 2, "w3" ... "w511"), whitespace split, "</s>"
                  appended: the copy task the fixture was trained on, in text
  input.txt       24 source sentences;  refs.txt: the same sentences (copy task)
  hf.json         per setting (greedy / beam 4, batch size 4, optionally with
                  truncation to 8 tokens): HF's pipeline, tokenizer(batch,
                  padding=True) -> model.generate -> batch_decode(skip_special_tokens),
                  and sacrebleu corpus BLEU / rouge-score mean F of those predictions.

Usage: .venv/bin/python scripts/refs/generate_predict_refs.py
"""
import json
import os
import platform
import sys

import numpy as np
import rouge_score
import sacrebleu
import tokenizers
import torch
import transformers
from rouge_score import rouge_scorer
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoModelForSeq2SeqLM, PreTrainedTokenizerFast

OUT = "testdata/generate/predict"
MODEL = "testdata/models/t5-tiny"


def main():
    os.makedirs(OUT, exist_ok=True)
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    vocab.update({f"w{i}": i for i in range(3, 512)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok.add_special_tokens(["<pad>", "</s>", "<unk>"])
    tok_path = os.path.join(OUT, "tokenizer.json")
    tok.save(tok_path)
    hf_tok = PreTrainedTokenizerFast(tokenizer_file=tok_path, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")

    rng = np.random.default_rng(99)
    lines = [" ".join(f"w{int(x)}" for x in rng.integers(3, 48, size=int(rng.integers(2, 13)))) for _ in range(24)]
    for name in ("input.txt", "refs.txt"):
        with open(os.path.join(OUT, name), "w") as f:
            f.write("\n".join(lines) + "\n")

    model = AutoModelForSeq2SeqLM.from_pretrained(MODEL).eval()
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"])
    settings = {}
    for name, kwargs, trunc in (("greedy", {}, None), ("beam4", {"num_beams": 4}, None),
                                ("greedy_truncate8", {}, 8), ("beam4_max_new_tokens6", {"num_beams": 4, "max_new_tokens": 6}, None)):
        preds = []
        for start in range(0, len(lines), 4):
            batch = lines[start:start + 4]
            enc = hf_tok(batch, padding=True, return_tensors="pt",
                         **({"truncation": True, "max_length": trunc} if trunc else {}))
            with torch.no_grad():
                out = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **kwargs)
            preds += hf_tok.batch_decode(out, skip_special_tokens=True)
        bleu = sacrebleu.corpus_bleu(preds, [lines])
        rouge = [scorer.score(r, p) for p, r in zip(preds, lines)]
        settings[name] = {
            "kwargs": kwargs, "truncate": trunc, "batch_size": 4, "predictions": preds,
            "bleu": bleu.score,
            "rouge": {k: float(np.mean([s[k].fmeasure for s in rouge])) for k in ("rouge1", "rouge2", "rougeL")},
        }
    doc = {
        "command": "python scripts/refs/generate_predict_refs.py " + " ".join(sys.argv[1:]),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "sacrebleu": sacrebleu.__version__,
                     "rouge_score": getattr(rouge_score, "__version__", "0.1.2")},
        "settings": settings,
    }
    with open(os.path.join(OUT, "hf.json"), "w") as f:
        json.dump(doc, f, sort_keys=True, indent=1)
        f.write("\n")
    print({k: (v["bleu"], v["predictions"][:2]) for k, v in settings.items()})


if __name__ == "__main__":
    main()
