#!/usr/bin/env python3
"""Generates internal/arch/table_gen.go: how transformers trains each of its
encoder-decoder architectures, probed from the installed transformers.

    python scripts/gen_arch_table.py [--out internal/arch/table_gen.go]
    (or: cd internal/arch && PYTHON=.venv/bin/python go generate)

Rows: every model type whose default config says is_encoder_decoder. Those
with an AutoModelForSeq2SeqLM class that reads input_ids are text-to-text
architectures; for each, a tiny model (scripts/fixtures/tiny_archs.py) is
built and probed:

- LossKwargs: HF Trainer's own test (trainer.py, "Model introspection"):
  the model's accepts_loss_kwargs attribute if it has one, else whether
  forward's signature has a **kwargs parameter.
- LabelsPaddedWithPad: the model's prepare_decoder_input_ids_from_labels
  overwrites the -100 of the labels it is given with pad (FSMT), so the
  collator's labels and HF's loss count padded positions.
- DecoderMasksPad: without decoder_attention_mask the decoder masks the
  positions holding pad (FSMT) rather than attending to all of them.
- LayerdropKeys: the config keys of LayerDrop (whole layers skipped at
  random in training), a per-checkpoint setting ortrain does not reproduce
  (it trains every layer and says so when a config sets one above 0).
- LossUsesNumItems: the loss of the same batch with and without
  num_items_in_batch (=100); equal means the model ignores it.
- Loss is cross entropy: in train mode with every dropout at 0, the model's
  loss equals torch cross_entropy(logits, labels, ignore_index=-100), and two
  runs agree (no randomness besides dropout); otherwise it is refused.
- NotTrained: state-dict entries that are buffers, or parameters with
  requires_grad False, after save_pretrained + from_pretrained (what a user
  fine-tunes). TrainedNotSaved: trainable parameters save_pretrained omits.
  TrainedAfterLoading: frozen in a freshly constructed model, trainable
  after from_pretrained.
- PaddingIdx: nn.Embedding modules with a padding_idx (their weights).
- DecoderStart: the decoder inputs the model makes from labels ending in a
  non-special token: behind decoder_start_token_id (DecoderStartKey: the
  config key it comes from; T5Gemma has none and starts with bos_token_id),
  or behind the last label token (mBART-style shift_tokens_right).
- Tokenizer: TOKENIZER_MAPPING_NAMES (the language-code templates of the
  tokenizer classes are package tokenize's, from
  scripts/gen_tokenizer_languages.py).

Support: an architecture is supported when nothing above refuses it, it is
not in REFUSED (reasons found when exporting and training them), and its
fixture testdata/arch/<model_type>/ exists (made by
scripts/fixtures/make_arch_models.py and checked by the Go tests against
PyTorch and HF). Nearest: the supported architecture whose parameter names
overlap most.
"""

import argparse
import inspect
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "fixtures"))

# Why ortrain does not train these (found by exporting and training them;
# see scripts/fixtures/make_arch_models.py's report).
REFUSED = {
    "encoder-decoder": "EncoderDecoderModel composes any encoder with any decoder, so its semantics are those of the two "
                       "models inside; ortrain has no way to check them",
    "t5gemma2": "multimodal model (a vision tower feeds the encoder); ortrain trains text-to-text models only",
    "seamless_m4t": "speech-and-text model whose text-to-text part shares its config with speech modules; not verified by ortrain",
    "seamless_m4t_v2": "speech-and-text model whose text-to-text part shares its config with speech modules; not verified by ortrain",
}


def quiet():
    warnings.filterwarnings("ignore")
    import logging

    logging.disable(logging.WARNING)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def encoder_decoder_types():
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING, CONFIG_MAPPING_NAMES

    out = []
    for mt in CONFIG_MAPPING_NAMES:
        try:
            cfg = CONFIG_MAPPING[mt]()
        except Exception:
            continue
        if getattr(cfg, "is_encoder_decoder", False):
            out.append(mt)
    return sorted(out)


def seq2seq_class(mt):
    import transformers
    from transformers.models.auto import modeling_auto as ma

    name = dict(ma.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES).get(mt)
    return (name, getattr(transformers, name)) if name else (None, None)


def non_text_inputs(cls):
    params = inspect.signature(cls.forward).parameters
    return [p for p in ("pixel_values", "input_features", "input_values", "past_values") if p in params]


def accepts_loss_kwargs(model):
    """trainer.py: unwrapped_model.accepts_loss_kwargs if set, else **kwargs in forward."""
    if hasattr(model, "accepts_loss_kwargs"):
        return bool(model.accepts_loss_kwargs), "accepts_loss_kwargs attribute"
    params = inspect.signature(model.forward).parameters
    return any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()), "forward signature"


def pattern(name):
    return re.sub(r"(?<=\.)\d+(?=\.)", "*", name)


def patterns(names):
    return sorted({pattern(n) for n in names})


def strip_base(model, name):
    pre = getattr(model, "base_model_prefix", "") + "."
    return name[len(pre):] if pre != "." and name.startswith(pre) else name


def probe(mt, cls, cfg):
    import torch
    from safetensors import safe_open

    torch.manual_seed(0)
    torch.set_num_threads(1)
    fresh = cls(cfg)
    fresh_frozen = {n for n, p in fresh.named_parameters() if not p.requires_grad}
    with tempfile.TemporaryDirectory() as d:
        fresh.save_pretrained(d)
        with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
            saved = set(f.keys())
        model = cls.from_pretrained(d, attn_implementation="eager")
    sd = model.state_dict()
    params = dict(model.named_parameters(remove_duplicate=False))
    buffers = {n for n, _ in model.named_buffers() if n in sd}
    frozen = {n for n, p in params.items() if not p.requires_grad}
    # tied parameters are saved once under one of their names
    storage = {}
    for n, t in sd.items():
        storage.setdefault(t.data_ptr(), []).append(n)
    not_saved = {n for n in sd if n not in saved and not any(o in saved for o in storage[sd[n].data_ptr()])}

    row = {}
    row["loss_kwargs"], row["loss_kwargs_source"] = accepts_loss_kwargs(model)
    not_trained = []
    for p in patterns(buffers):
        not_trained.append((p, "buffer (not a parameter)"))
    for p in patterns(frozen - buffers):
        not_trained.append((p, "requires_grad False after from_pretrained"))
    row["not_trained"] = not_trained
    row["trained_not_saved"] = patterns(n for n in not_saved if n in params and params[n].requires_grad)
    row["trained_after_loading"] = patterns(n for n in fresh_frozen if n in params and params[n].requires_grad)
    pad_idx = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Embedding) and mod.padding_idx is not None:
            pad_idx.append(name + ".weight")
    row["padding_idx"] = patterns(pad_idx)
    row["parameters"] = patterns(strip_base(model, n) for n in params)

    pad = cfg.pad_token_id if cfg.pad_token_id is not None else 0
    ids = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 9, pad]])
    mask = (ids != pad).long()
    labels = torch.tensor([[13, 14, 15, 77], [16, 17, 77, -100]])
    # decoder inputs as HF's DataCollatorForSeq2Seq makes them (the model's
    # prepare_decoder_input_ids_from_labels), else as the model's forward
    # makes them from labels
    seen = {}
    if hasattr(model, "prepare_decoder_input_ids_from_labels"):
        mutable = labels.clone()
        seen["ids"] = model.prepare_decoder_input_ids_from_labels(labels=mutable)
        # FSMT's shift_tokens_right writes pad over the -100 of the labels
        # it is given, so the collator's labels, and HF's loss, count padded
        # target positions
        row["labels_padded_with_pad"] = bool((mutable != labels).any())
    else:
        def grab(mod, args, kwargs):
            seen.setdefault("ids", kwargs.get("input_ids", args[0] if args else None))

        h = model.get_decoder().register_forward_pre_hook(grab, with_kwargs=True)
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, labels=labels)
        h.remove()
    dec = seen["ids"]
    batch = dict(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, labels=labels)
    model.eval()
    with torch.no_grad():
        out = model(**batch)
    first = seen["ids"][:, 0].tolist()
    sub = getattr(cfg, "decoder", None)

    def cfg_id(key):
        v = getattr(cfg, key, None)
        return v if v is not None or sub is None else getattr(sub, key, None)

    if first == [77, 77]:
        row["decoder_start"] = "LastLabelToken"
    elif first[0] == first[1] and first[0] == cfg_id("decoder_start_token_id"):
        row["decoder_start"] = "StartToken"
        row["decoder_start_key"] = "decoder_start_token_id"
    elif first[0] == first[1] and first[0] == cfg_id("bos_token_id"):
        row["decoder_start"] = "StartToken"
        row["decoder_start_key"] = "bos_token_id"
    else:
        raise SystemExit(f"{mt}: decoder inputs start with {first}: neither decoder_start_token_id, bos_token_id nor the last label")

    # Without a decoder_attention_mask, does the decoder mask positions that
    # hold the pad id (FSMT), or attend to every position?
    padded = dict(batch, decoder_input_ids=dec.clone())
    padded["decoder_input_ids"][1, 3] = pad
    with torch.no_grad():  # with labels, as in training (FSMT then turns its cache off)
        none = model(**padded).logits
        ones = model(**padded, decoder_attention_mask=torch.ones_like(dec)).logits
    row["decoder_masks_pad"] = not torch.allclose(none, ones)
    with torch.no_grad():
        with_n = model(**batch, num_items_in_batch=torch.tensor(100))
    row["loss_uses_num_items"] = not torch.allclose(out.loss, with_n.loss)

    # LayerDrop (skipping whole layers at random in training) is set per
    # checkpoint; its config keys are recorded, and it is off for the probe.
    row["layerdrop_keys"] = sorted(k for k, v in cfg.to_dict().items() if k.endswith("layerdrop") and isinstance(v, (int, float)))
    for obj in [model.config] + [m for m in model.modules()]:
        for k in list(vars(obj)) if hasattr(obj, "__dict__") else []:
            if "layerdrop" in k and isinstance(getattr(obj, k, None), float):
                setattr(obj, k, 0.0)
    # In train mode with dropout off, the loss must be the cross entropy of
    # the logits, and deterministic.
    for mod in model.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    for k in ("dropout", "dropout_rate", "attention_dropout", "activation_dropout"):
        if isinstance(getattr(model.config, k, None), float):
            setattr(model.config, k, 0.0)
    for mod in model.modules():
        for obj in (mod, getattr(mod, "config", None)):
            for k in ("dropout", "dropout_rate", "attention_dropout", "activation_dropout"):
                if isinstance(getattr(obj, k, None), float):
                    setattr(obj, k, 0.0)
    model.train()
    with torch.no_grad():
        a = model(**batch)
        b = a
        for _ in range(8):  # rare random events (a 5% layer skip) show within a few runs
            b = model(**batch)
            if not torch.equal(a.loss, b.loss):
                break
    logits = a.logits
    ce = None
    if logits.dim() == 3 and logits.shape[:2] == labels.shape:
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                               ignore_index=-100)
    if not torch.equal(a.loss, b.loss):
        knobs = [f"{k} {v}" for k, v in sorted(cfg.to_dict().items()) if "jitter" in k and isinstance(v, float) and v > 0]
        cause = f" ({', '.join(knobs)})" if knobs else ""
        row["refusal"] = (f"its training forward is random beyond dropout{cause}: two runs with dropout off give losses "
                          f"{a.loss.item():.6g} and {b.loss.item():.6g}, which ortrain cannot reproduce")
    elif ce is None:
        row["refusal"] = f"its logits {tuple(logits.shape)} are not one distribution per label token"
    elif not torch.allclose(a.loss, ce, rtol=1e-6, atol=1e-6):
        row["refusal"] = (f"its training loss ({a.loss.item():.6g}) is not the cross entropy of its logits ({ce.item():.6g}); "
                          "ortrain trains with HF's cross entropy over the logits")
    return row


def tokenizer_class(mt):
    from transformers.models.auto.tokenization_auto import TOKENIZER_MAPPING_NAMES

    t = TOKENIZER_MAPPING_NAMES.get(mt)
    if isinstance(t, (tuple, list)):
        t = next((x for x in t if x), None)
    return t or ""


def fixture_exists(mt):
    return os.path.isfile(os.path.join(REPO, "testdata", "arch", mt, "refs.json"))


def export_failures():
    """Architectures scripts/export_model.py could not export, with why
    (testdata/arch/exports.json, written by make_arch_models.py)."""
    import json

    p = os.path.join(REPO, "testdata", "arch", "exports.json")
    if not os.path.exists(p):
        return {}
    archs = json.load(open(p)).get("architectures", {})
    return {mt: r["why"] for mt, r in archs.items() if not r.get("exported")}


def summarize_export_failure(why):
    """'model.onnx: no exporter produced ...: dynamo: X; torchscript: Y' ->
    'no exporter gives a model.onnx equal to PyTorch at other lengths
    (dynamo: X'; torchscript: Y')' with X', Y' cut to their first clause."""
    graph, _, rest = why.partition(": no exporter produced a graph equal to PyTorch: ")
    if not rest:
        return why[:300]
    parts = []
    for piece in rest.split("; "):
        name, _, msg = piece.partition(": ")
        msg = re.sub(r"\s*\(.*", "", msg) if not msg.startswith("outputs differ") else msg.split(" (")[0]
        msg = msg.split(" Name:")[0].split(" for the following indices")[0]
        parts.append(f"{name}: {msg[:110].rstrip(' .')}")
    return f"no exporter gives a {graph} equal to PyTorch at other lengths ({'; '.join(parts)})"


def go_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def go_list(xs):
    return "[]string{" + ", ".join(go_str(x) for x in xs) + "}" if xs else "nil"


def render(rows, versions):
    lines = [
        f"// Code generated by scripts/gen_arch_table.py from transformers {versions['transformers']} "
        f"(torch {versions['torch']}); DO NOT EDIT.",
        "",
        "package arch",
        "",
        "// Transformers is the transformers version the table was generated from.",
        f"const Transformers = {go_str(versions['transformers'])}",
        "",
        "func table() []Arch {",
        "\treturn []Arch{",
    ]
    for r in rows:
        lines.append("\t\t{")
        lines.append(f"\t\t\tModelType: {go_str(r['model_type'])},")
        if r.get("class"):
            lines.append(f"\t\t\tClass: {go_str(r['class'])},")
        if r["supported"]:
            lines.append("\t\t\tSupported: true,")
        else:
            lines.append(f"\t\t\tRefusal: {go_str(r['refusal'])},")
        if r.get("nearest"):
            lines.append(f"\t\t\tNearest: {go_str(r['nearest'])},")
        if r.get("loss_kwargs"):
            lines.append("\t\t\tLossKwargs: true,")
        if r.get("loss_uses_num_items"):
            lines.append("\t\t\tLossUsesNumItems: true,")
        if r.get("not_trained"):
            lines.append("\t\t\tNotTrained: []Tensor{" + ", ".join(
                "{" + go_str(p) + ", " + go_str(w) + "}" for p, w in r["not_trained"]) + "},")
        for key, field in (("trained_not_saved", "TrainedNotSaved"), ("trained_after_loading", "TrainedAfterLoading"),
                           ("padding_idx", "PaddingIdx")):
            if r.get(key):
                lines.append(f"\t\t\t{field}: {go_list(r[key])},")
        if r.get("decoder_start"):
            lines.append(f"\t\t\tDecoderStart: {r['decoder_start']},")
        if r.get("labels_padded_with_pad"):
            lines.append("\t\t\tLabelsPaddedWithPad: true,")
        if r.get("decoder_masks_pad"):
            lines.append("\t\t\tDecoderMasksPad: true,")
        if r.get("layerdrop_keys"):
            lines.append(f"\t\t\tLayerdropKeys: {go_list(r['layerdrop_keys'])},")
        if r.get("decoder_start_key"):
            lines.append(f"\t\t\tDecoderStartKey: {go_str(r['decoder_start_key'])},")
        if r.get("tokenizer"):
            lines.append(f"\t\t\tTokenizer: {go_str(r['tokenizer'])},")
        if r.get("parameters"):
            lines.append(f"\t\t\tParameters: {go_list(r['parameters'])},")
        lines.append("\t\t},")
    lines += ["\t}", "}", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(REPO, "internal", "arch", "table_gen.go"))
    args = ap.parse_args()
    quiet()
    import torch
    import transformers

    import tiny_archs

    rows = []
    failed_exports = export_failures()
    for mt in encoder_decoder_types():
        name, cls = seq2seq_class(mt)
        row = {"model_type": mt, "class": name or "", "supported": False}
        rows.append(row)
        if cls is None:
            row["refusal"] = "not a text-to-text model: transformers has no AutoModelForSeq2SeqLM class for it"
            continue
        other = non_text_inputs(cls)
        if other and mt not in REFUSED:
            row["refusal"] = f"not a text-to-text model: its forward reads {', '.join(other)}"
            continue
        row["tokenizer"] = tokenizer_class(mt)
        cfg = tiny_archs.config(mt) if mt in tiny_archs.CONFIGS else None
        if cfg is not None:
            row.update(probe(mt, cls, cfg))
        if "refusal" in row:
            pass
        elif mt in REFUSED:
            row["refusal"] = REFUSED[mt]
        elif mt in failed_exports:
            row["refusal"] = "scripts/export_model.py cannot export it: " + summarize_export_failure(failed_exports[mt])
        elif cfg is None:
            row["refusal"] = "no tiny configuration to verify it with (scripts/fixtures/tiny_archs.py)"
        elif not fixture_exists(mt):
            row["refusal"] = f"not verified: no fixture testdata/arch/{mt} (scripts/fixtures/make_arch_models.py)"
        else:
            row["supported"] = True
        print(f"{mt:24s} {'supported' if row['supported'] else 'refused: ' + row['refusal'][:90]}", file=sys.stderr)
    supported = [r for r in rows if r["supported"]]
    for r in rows:
        if r["supported"] or not r.get("parameters"):
            continue
        mine = set(r["parameters"])
        best = max(supported, key=lambda s: len(mine & set(s["parameters"])) / len(mine | set(s["parameters"])),
                   default=None)
        if best:
            r["nearest"] = best["model_type"]
    for r in rows:
        if not r["supported"] and "nearest" not in r and supported:
            # no parameters to compare: the supported type nearest by name
            r["nearest"] = min((s["model_type"] for s in supported), key=lambda t: _edit(t, r["model_type"]))
    versions = {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0]}
    text = render(rows, versions)
    with open(args.out, "w") as f:
        f.write(text)
    try:
        subprocess.run(["gofmt", "-w", args.out], check=True)
    except FileNotFoundError:
        print("gofmt not found: run gofmt on " + args.out, file=sys.stderr)
    print(f"wrote {args.out}: {len(rows)} architectures, {len(supported)} supported", file=sys.stderr)


def _edit(a, b):
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j - 1] + (a[i - 1] != b[j - 1]), prev[j] + 1, cur[j - 1] + 1)
        prev = cur
    return prev[-1]


if __name__ == "__main__":
    main()
