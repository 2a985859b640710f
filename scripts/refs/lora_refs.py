"""PEFT LoRA references on the T5, BART and Marian fixtures of testdata/arch/.

For each model and each of two LoraConfigs (r 8, lora_alpha 16,
lora_dropout 0, task_type SEQ_2_SEQ_LM):

  qv   target_modules q,v (T5) / q_proj,v_proj (BART, Marian)
  ffn  target_modules k,o,wi,wo (T5) / k_proj,out_proj,fc1,fc2

the base model is loaded as arch_refs.py loads it (from_pretrained, every
dropout at 0), wrapped with peft.get_peft_model after seeding torch with 0,
and trained by transformers' Seq2SeqTrainer: 20 optimizer steps with
gradient accumulation 2 (batch 2, copy-task rows, sequential order,
logging every step, evaluation every 5 steps, AdamW lr 5e-4, weight decay
0.01, warmup 1). testdata/lora/<model>-<config>/ gets:

  initial/   the adapter before training (PeftModel.save_pretrained): its
             lora_A are PEFT's Kaiming-uniform draws, lora_B zero; ortrain
             starts from it, so both runs have the same initial adapter
  trained/   the adapter after training
  refs.json  the config, the rows, the Trainer's arguments and log_history,
             get_nb_trainable_parameters(), and the logits of a fixed batch
             from PeftModel.from_pretrained(base, trained/) (logits.safetensors)

testdata/lora/keys.json: the keys PEFT's save_pretrained writes for BART with
bias "all" and modules_to_save, and the trainable counts of such configs.

With --roundtrip DIR (after `ORTRAIN_LORA_ROUNDTRIP_OUT=DIR go test
./ortrain/engine/ -run TestLoRAAdapterLoadsInPEFT`) it loads each adapter
ortrain wrote under DIR with PeftModel.from_pretrained and writes
testdata/lora/roundtrip.json: PEFT's logits of the batch ortrain used
(roundtrip/<case>.safetensors) and the largest difference from ortrain's, and
merge_and_unload()'s adapted weights (roundtrip/<case>-merged.safetensors)
with their largest difference from ortrain's merged weights.

With --merged it writes, for every case, what PEFT's merge_and_unload() makes
of the trained adapter: testdata/lora/<case>/merged.safetensors (the merged
weights of the adapted modules, and the merged model's logits of the batch
of logits.safetensors) and merged.json (HF generate() on two source batches,
greedy and beam, with the merged model and with the unmerged PeftModel).

Run: .venv/bin/python scripts/refs/lora_refs.py [--roundtrip DIR | --merged]
(scripts/requirements.txt with peft==0.21.2)
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fixtures"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import arch_refs as ar  # noqa: E402
import fixturelib as fl  # noqa: E402

OUT = os.path.join(fl.TESTDATA, "lora")
MODELS = ("t5", "bart", "marian")
TARGETS = {
    "t5": {"qv": ["q", "v"], "ffn": ["k", "o", "wi", "wo"]},
    "bart": {"qv": ["q_proj", "v_proj"], "ffn": ["k_proj", "out_proj", "fc1", "fc2"]},
    "marian": {"qv": ["q_proj", "v_proj"], "ffn": ["k_proj", "out_proj", "fc1", "fc2"]},
}
TRAINER_ARGS = dict(
    per_device_train_batch_size=2, per_device_eval_batch_size=4, gradient_accumulation_steps=2,
    max_steps=20, learning_rate=5e-4, lr_scheduler_type="linear", warmup_steps=1, weight_decay=0.01,
    max_grad_norm=1.0, logging_steps=1, eval_strategy="steps", eval_steps=5, save_strategy="no", seed=42,
    use_cpu=True, dataloader_num_workers=0, remove_unused_columns=False, train_sampling_strategy="sequential",
    report_to="none", disable_tqdm=True,
)


def lora_config(targets, **kw):
    from peft import LoraConfig

    return LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=targets, task_type="SEQ_2_SEQ_LM", **kw)


def batch_of(model, sp, rows):
    return ar.Collator(model, sp["pad"])(rows)


def logits_of(model, batch):
    model.eval()
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     decoder_input_ids=batch["decoder_input_ids"]).logits.detach().contiguous()


def tidy(adapter_dir, mt):
    """Drops the model card PEFT writes and records the base model by its
    path in the repository, not this machine's."""
    card = os.path.join(adapter_dir, "README.md")
    if os.path.exists(card):
        os.remove(card)
    p = os.path.join(adapter_dir, "adapter_config.json")
    cfg = json.load(open(p))
    cfg["base_model_name_or_path"] = f"testdata/arch/{mt}"
    with open(p, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def run(mt, cname, targets):
    from peft import PeftModel, get_peft_model
    from safetensors.torch import save_file
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments

    out = os.path.join(OUT, f"{mt}-{cname}")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(int(hashlib.sha256(f"lora-{mt}".encode()).hexdigest()[:8], 16))
    fl.seed_everything(0)
    base = ar.load(mt)
    sp = ar.special(base)
    lo, hi = ar.content_range(sp)
    train = ar.copy_rows(rng, sp, 24, lo, hi)
    dev = ar.copy_rows(rng, sp, 8, lo, hi)
    check = ar.copy_rows(rng, sp, 3, lo, hi, 3, 7)
    fl.seed_everything(0)
    model = get_peft_model(base, lora_config(targets))
    trainable, total = model.get_nb_trainable_parameters()
    model.save_pretrained(os.path.join(out, "initial"))
    tidy(os.path.join(out, "initial"), mt)
    tmp = tempfile.mkdtemp(prefix=f"ortrain-lora-{mt}-")
    args = Seq2SeqTrainingArguments(output_dir=os.path.join(tmp, "out"), **TRAINER_ARGS)
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=ar.ListDataset(train), eval_dataset=ar.ListDataset(dev),
                             data_collator=ar.Collator(base, sp["pad"]))
    res = trainer.train()
    model.save_pretrained(os.path.join(out, "trained"))
    tidy(os.path.join(out, "trained"), mt)
    hist = [{k: (None if k.endswith(("_runtime", "_per_second")) else v) for k, v in e.items()}
            for e in trainer.state.log_history]
    # The trained adapter as a user loads it: a fresh base model.
    fresh = PeftModel.from_pretrained(ar.load(mt), os.path.join(out, "trained"))
    batch = batch_of(base, sp, check)
    save_file({"logits": logits_of(fresh, batch)}, os.path.join(out, "logits.safetensors"), metadata={"format": "pt"})
    refs = {
        "command": fl.command(), "versions": fl.versions("torch", "transformers", "peft", "numpy", "safetensors"),
        "model_type": mt, "config": cname, "special_ids": sp,
        "lora_config": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": targets},
        "trainable_params": trainable, "all_params": total,
        "trainer": {
            "arguments": dict(TRAINER_ARGS), "model_accepts_loss_kwargs": bool(trainer.model_accepts_loss_kwargs),
            "train_rows": train, "eval_rows": dev, "log_history": hist,
            "train_output": {"global_step": res.global_step, "training_loss": res.training_loss},
        },
        "logits_batch": {k: fl.tensor_ref(v) for k, v in batch.items()},
    }
    fl.write_json(os.path.join(out, "refs.json"), refs)
    losses = [e["loss"] for e in hist if "loss" in e]
    print(f"{mt}-{cname}: trainable {trainable} of {total}, losses {losses[0]:.4f}..{losses[-1]:.4f}")


def keys():
    """Key names and counts for the bias and modules_to_save options."""
    from peft import get_peft_model

    cases = {}
    for name, kw in {
        "bart-bias-all-save": dict(bias="all", modules_to_save=["layernorm_embedding"]),
        "bart-bias-lora-only": dict(bias="lora_only"),
        "t5-bias-all": dict(bias="all"),
        "bart-bias-all": dict(bias="all"),
        "bart-save": dict(modules_to_save=["layernorm_embedding"]),
    }.items():
        mt = name.split("-")[0]
        fl.seed_everything(0)
        model = get_peft_model(ar.load(mt), lora_config(TARGETS[mt]["qv"], **kw))
        trainable, total = model.get_nb_trainable_parameters()
        d = tempfile.mkdtemp()
        model.save_pretrained(d)
        from safetensors import safe_open

        with safe_open(os.path.join(d, "adapter_model.safetensors"), "pt") as f:
            ks = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
        cases[name] = {"model_type": mt, "options": kw, "target_modules": TARGETS[mt]["qv"],
                       "trainable_params": trainable, "all_params": total, "keys": ks,
                       "requires_grad": sorted(n for n, p in model.named_parameters() if p.requires_grad)}
    # Which modules a target_modules value adapts (PEFT's matching rules).
    from peft.tuners.lora import LoraLayer

    targets = {}
    for name, (mt, tm) in {
        "t5-all-linear": ("t5", "all-linear"),
        "t5-regex": ("t5", r".*SelfAttention\.(q|v)"),
        "t5-suffixes": ("t5", ["q", "wo", "DenseReluDense.wi"]),
        "bart-all-linear": ("bart", "all-linear"),
        "bart-suffixes": ("bart", ["encoder_attn.k_proj", "fc1"]),
        "marian-all-linear": ("marian", "all-linear"),
    }.items():
        fl.seed_everything(0)
        model = get_peft_model(ar.load(mt), lora_config(tm))
        mods = [n.removeprefix("base_model.model.") for n, m in model.named_modules() if isinstance(m, LoraLayer)]
        targets[name] = {"model_type": mt, "target_modules": tm, "adapted": mods}
    fl.write_json(os.path.join(OUT, "keys.json"), {"command": fl.command(), "versions": fl.versions("torch", "transformers", "peft"),
                                                   "cases": cases, "targets": targets})


def roundtrip(root):
    from peft import PeftModel
    from safetensors.torch import load_file, save_file

    results = {}
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.isfile(os.path.join(d, "adapter", "adapter_config.json")):
            continue
        meta = json.load(open(os.path.join(d, "meta.json")))
        mt = meta["model_type"]
        model = PeftModel.from_pretrained(ar.load(mt), os.path.join(d, "adapter"))
        batch = {k: torch.tensor(v) for k, v in meta["batch"].items()}
        got = logits_of(model, batch)
        ours = load_file(os.path.join(d, "ortrain_logits.safetensors"))["logits"]
        os.makedirs(os.path.join(OUT, "roundtrip"), exist_ok=True)
        save_file({"logits": got}, os.path.join(OUT, "roundtrip", f"{name}.safetensors"), metadata={"format": "pt"})
        plain = logits_of(ar.load(mt), batch)
        # merge_and_unload's adapted weights against ortrain's --merge_lora values.
        lora_mods = {k.removeprefix("base_model.model.").rsplit(".lora_A.", 1)[0] for k in load_file(os.path.join(d, "adapter", "adapter_model.safetensors")) if ".lora_A." in k}
        full = PeftModel.from_pretrained(ar.load(mt), os.path.join(d, "adapter")).merge_and_unload().state_dict()
        merged = {m + ".weight": full[m + ".weight"].contiguous() for m in sorted(lora_mods)}
        save_file(merged, os.path.join(OUT, "roundtrip", f"{name}-merged.safetensors"), metadata={"format": "pt"})
        ours_merged = load_file(os.path.join(d, "merged.safetensors"))
        merge_diff = max(float((v - ours_merged[k]).abs().max()) for k, v in merged.items())
        results[name] = {"model_type": mt, "batch": meta["batch"], "max_abs_diff_from_ortrain": float((got - ours).abs().max()),
                         "max_abs_diff_from_base_model": float((got - plain).abs().max()),
                         "merged_weights_max_abs_diff_from_ortrain": merge_diff,
                         "adapter_keys": sorted(load_file(os.path.join(d, "adapter", "adapter_model.safetensors")).keys())}
        print(f"{name}: PEFT vs ortrain logits max abs diff {results[name]['max_abs_diff_from_ortrain']:.3g}, merged weights {merge_diff:.3g}")
    fl.write_json(os.path.join(OUT, "roundtrip.json"), {"command": fl.command(), "versions": fl.versions("torch", "transformers", "peft"), "cases": results})


def merged(names):
    """merge_and_unload() of each PEFT-trained adapter: merged weights,
    logits and generate() sequences, against the unmerged PeftModel's."""
    from peft import PeftModel
    from safetensors.torch import load_file, save_file

    for name in names:
        d = os.path.join(OUT, name)
        refs = json.load(open(os.path.join(d, "refs.json")))
        mt = refs["model_type"]
        trained = os.path.join(d, "trained")
        batch = {k: torch.tensor(v["data"]).reshape(v["shape"]) for k, v in refs["logits_batch"].items()}
        unmerged = PeftModel.from_pretrained(ar.load(mt), trained)
        merged_model = PeftModel.from_pretrained(ar.load(mt), trained).merge_and_unload()
        mods = sorted({k.removeprefix("base_model.model.").rsplit(".lora_A.", 1)[0]
                       for k in load_file(os.path.join(trained, "adapter_model.safetensors")) if ".lora_A." in k})
        state = merged_model.state_dict()
        tensors = {m + ".weight": state[m + ".weight"].contiguous() for m in mods}
        logits = logits_of(merged_model, batch)
        tensors["logits"] = logits
        save_file(tensors, os.path.join(d, "merged.safetensors"), metadata={"format": "pt"})
        sp = ar.special(merged_model)
        seed = int(hashlib.sha256(f"lora-merged-{name}".encode()).hexdigest()[:8], 16)
        gen_merged = ar.generation(mt, merged_model, sp, np.random.default_rng(seed))
        gen_unmerged = ar.generation(mt, unmerged, sp, np.random.default_rng(seed))
        same = [a["sequences"] == b["sequences"] for a, b in zip(gen_merged["cases"], gen_unmerged["cases"])]
        logit_diff = float((logits - logits_of(unmerged, batch)).abs().max())
        fl.write_json(os.path.join(d, "merged.json"), {
            "command": fl.command(), "versions": fl.versions("torch", "transformers", "peft", "numpy", "safetensors"),
            "model_type": mt, "adapter": f"testdata/lora/{name}/trained", "merged_modules": mods,
            "logits_max_abs_diff_merged_vs_unmerged": logit_diff,
            "generation_merged": gen_merged, "generation_unmerged": gen_unmerged,
            "sequences_equal_merged_vs_unmerged": same,
        })
        print(f"{name}: {len(mods)} modules merged, logits merged vs unmerged {logit_diff:.3g}, sequences equal {same}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--roundtrip", metavar="DIR")
    ap.add_argument("--keys", action="store_true", help="only testdata/lora/keys.json")
    ap.add_argument("--merged", action="store_true", help="only merge_and_unload() references (merged.json, merged.safetensors)")
    ap.add_argument("--only", nargs="*", default=None, help="model-config names (t5-qv ...)")
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    if a.roundtrip:
        roundtrip(a.roundtrip)
        return
    if a.keys:
        keys()
        return
    if a.merged:
        merged(a.only or [f"{mt}-{c}" for mt in MODELS for c in TARGETS[mt]])
        return
    for mt in MODELS:
        for cname, targets in TARGETS[mt].items():
            if a.only is None or f"{mt}-{cname}" in a.only:
                run(mt, cname, targets)
    if a.only is None:
        keys()


if __name__ == "__main__":
    main()
