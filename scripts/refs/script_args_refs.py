"""The batches HF's run_translation.py / run_summarization.py build from their
data arguments, on the fixture data, for the Go test that prepares ortrain
with the same arguments (ortrain/engine/scriptargs_test.go).

What the scripts do (transformers examples/pytorch/translation/run_translation.py):
  train_dataset.select(range(min(len, max_train_samples)))          (likewise eval/predict)
  tokenizer(inputs, max_length=max_source_length, padding=padding, truncation=True)
  labels: max_length=max_target_length (train) / val_max_target_length (eval, predict)
  padding = "max_length" if pad_to_max_length else False
  pad_to_max_length and ignore_pad_token_for_loss: pad ids in labels -> -100
  collator: default_data_collator if pad_to_max_length, else
            DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100 if ignore_pad_token_for_loss else pad)
The model (the T5 fixture) makes decoder_input_ids from the labels
(prepare_decoder_input_ids_from_labels). Batches are taken in dataset
order (what evaluation does; training shuffles with torch's sampler).

Data: testdata/dataformats/tatoeba-dev.jsonl, tokenizer testdata/realdata/tokenizers/flan-t5-small.
Run: python scripts/refs/script_args_refs.py   -> testdata/trainer/script_args/refs.json
"""

import json
import os
import sys

import torch
from datasets import load_dataset
from transformers import AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq, T5TokenizerFast, default_data_collator

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
import fixturelib as fl  # noqa: E402

DATA = os.path.join(fl.TESTDATA, "dataformats", "tatoeba-dev.jsonl")
OUT = os.path.join(fl.TESTDATA, "trainer", "script_args", "refs.json")

CASES = {
    "samples_dynamic": dict(max_train_samples=10, max_eval_samples=6, max_source_length=12, max_target_length=8,
                            val_max_target_length=5, pad_to_max_length=False, ignore_pad_token_for_loss=True),
    "samples_padded": dict(max_train_samples=10, max_eval_samples=6, max_source_length=12, max_target_length=8,
                           val_max_target_length=5, pad_to_max_length=True, ignore_pad_token_for_loss=True),
    "pad_in_loss_dynamic": dict(max_train_samples=7, max_eval_samples=5, max_source_length=16, max_target_length=10,
                                val_max_target_length=None, pad_to_max_length=False, ignore_pad_token_for_loss=False),
    "pad_in_loss_padded": dict(max_train_samples=7, max_eval_samples=5, max_source_length=16, max_target_length=10,
                               val_max_target_length=None, pad_to_max_length=True, ignore_pad_token_for_loss=False),
}
BATCH = 4
PREFIX = "translate English to Romanian: "


def main():
    tok = T5TokenizerFast.from_pretrained(os.path.join(fl.TESTDATA, "realdata", "tokenizers", "flan-t5-small"))
    model = AutoModelForSeq2SeqLM.from_pretrained(os.path.join(fl.TESTDATA, "models", "t5-tiny"))
    raw = load_dataset("json", data_files=DATA, split="train", cache_dir=os.path.join("/tmp", "script_args_cache"))
    out = {"command": fl.command(), "versions": fl.versions("torch", "transformers", "datasets"),
           "batch_size": BATCH, "source_prefix": PREFIX, "cases": {}}
    for name, c in CASES.items():
        val_max = c["val_max_target_length"] or c["max_target_length"]  # the scripts' __post_init__
        padding = "max_length" if c["pad_to_max_length"] else False

        def preprocess(examples, max_target_length):
            inputs = [PREFIX + ex["en"] for ex in examples["translation"]]
            targets = [ex["ro"] for ex in examples["translation"]]
            mi = tok(inputs, max_length=c["max_source_length"], padding=padding, truncation=True)
            labels = tok(text_target=targets, max_length=max_target_length, padding=padding, truncation=True)
            if padding == "max_length" and c["ignore_pad_token_for_loss"]:
                labels["input_ids"] = [[(l if l != tok.pad_token_id else -100) for l in lab] for lab in labels["input_ids"]]
            mi["labels"] = labels["input_ids"]
            return mi

        if c["pad_to_max_length"]:
            collator = default_data_collator
        else:
            collator = DataCollatorForSeq2Seq(tok, model=model,
                                              label_pad_token_id=-100 if c["ignore_pad_token_for_loss"] else tok.pad_token_id)
        case = {"args": c, "train": [], "eval": []}
        for split, n, max_t in (("train", c["max_train_samples"], c["max_target_length"]), ("eval", c["max_eval_samples"], val_max)):
            ds = raw.select(range(min(len(raw), n)))
            ds = ds.map(lambda e: preprocess(e, max_t), batched=True, remove_columns=raw.column_names)
            rows = [ds[i] for i in range(len(ds))]
            for s in range(0, len(rows), BATCH):
                b = collator(rows[s:s + BATCH])
                dec = b.get("decoder_input_ids")
                if dec is None:  # default_data_collator: the model shifts the labels itself
                    dec = model.prepare_decoder_input_ids_from_labels(labels=torch.as_tensor(b["labels"]))
                case[split].append({k: torch.as_tensor(v).tolist() for k, v in
                                    (("input_ids", b["input_ids"]), ("attention_mask", b["attention_mask"]),
                                     ("labels", b["labels"]), ("decoder_input_ids", dec))})
        out["cases"][name] = case
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
