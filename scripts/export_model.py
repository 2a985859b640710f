#!/usr/bin/env python3
"""Exports a transformers seq2seq checkpoint folder into the folder ortrain trains.

    python scripts/export_model.py CHECKPOINT_DIR OUT_DIR [--exporter auto|dynamo|torchscript]

CHECKPOINT_DIR is what `save_pretrained` writes (config.json, weights,
generation_config.json) plus the tokenizer files. OUT_DIR receives:

  model.onnx                    input_ids, attention_mask, decoder_input_ids[,
                                decoder_attention_mask] -> logits (the forward
                                graph ortrain differentiates), in training mode:
                                its Dropout nodes stay, so ortrain trains with
                                the model's dropout (--no-dropout: eval mode)
  encoder_model.onnx            input_ids, attention_mask -> last_hidden_state
  decoder_model.onnx            encoder_attention_mask, input_ids,
                                encoder_hidden_states -> logits,
                                present.N.{decoder,encoder}.{key,value}
  decoder_with_past_model.onnx  encoder_attention_mask, input_ids,
                                past_key_values.N.{decoder,encoder}.{key,value}
                                -> logits, present.N.decoder.{key,value}
  model.safetensors, config.json, generation_config.json   (save_pretrained:
                                parameters under their HF names)
  the tokenizer files of CHECKPOINT_DIR, copied as they are
  export.json                   what was exported how, and the checks below

Every graph keeps each parameter as one initializer named after its
state_dict entry (tied weights stay one tensor), so the four graphs share one
set of parameter values. `--exporter auto` (the default) exports each graph
with torch.onnx's dynamo exporter and falls back to the TorchScript exporter
when dynamo fails or its graph disagrees with PyTorch. Each graph is then run
in onnxruntime at shapes other than the traced ones (batch, source and target
lengths beyond any attention window, padding; Dropout in inference mode) and
compared with PyTorch in eval mode; the export fails, naming the graph, if
any output differs by more than --tolerance.

Requirements: scripts/requirements-export.txt (torch, transformers, onnx,
onnxscript, onnxruntime, safetensors, numpy at the versions ortrain is
tested with).
"""

import argparse
import json
import os
import shutil
import sys
import warnings

import numpy as np

# Files a transformers tokenizer may be made of; copied when present.
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "spiece.model", "sentencepiece.bpe.model", "source.spm", "target.spm", "vocab.json",
    "merges.txt", "vocab.txt", "vocab-src.json", "vocab-tgt.json", "sentencepiece.model",
    "chat_template.jinja",
)

FORWARD_INPUTS = ["input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask"]


class ExportError(Exception):
    pass


def quiet():
    """Silences the exporters' and transformers' progress and warning chatter."""
    import logging

    warnings.filterwarnings("ignore")
    for name in ("torch", "torch.onnx", "torch._dynamo", "torch.export", "torch.fx", "torch._export"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass


def why(e):
    """A one-line reason for an exporter's failure: the innermost cause's
    type and first line (torch.export wraps the real error)."""
    while e.__cause__ is not None:
        e = e.__cause__
    text = [l.strip() for l in str(e).strip().splitlines() if l.strip()]
    if "## Exception summary" in text:  # torch.onnx's wrapper of torch.export's error
        text = text[text.index("## Exception summary") + 1:]
    first = next((l for l in text if "step 1/3" not in l), "")
    first = first.replace("[ONNXRuntimeError] : ", "")
    for esc in ("\x1b[96m", "\x1b[0m", "\x1b[1;31m", "\x1b[m"):
        first = first.replace(esc, "")
    return f"{type(e).__name__}: {first[:240]}"


# ---------------------------------------------------------------- wrappers


def _torch():
    import torch

    return torch


def make_wrappers(model, encoder_output=None):
    """The four modules whose graphs ortrain reads. Each holds the whole
    model as `model`, so initializer names are "model." + state_dict name.
    encoder_output is the class of the encoder's output, which the decoder
    graphs rebuild around the encoder states they are given (default
    BaseModelOutput; NLLB-MoE's forward reads router_logits from its own)."""
    torch = _torch()
    from transformers import DynamicCache, EncoderDecoderCache
    from transformers.modeling_outputs import BaseModelOutput

    EncOut = encoder_output or BaseModelOutput

    n_layers = decoder_layers(model)

    def cache_tensors(cache, with_encoder):
        out = []
        for i in range(n_layers):
            sa = cache.self_attention_cache.layers[i]
            out += [sa.keys, sa.values]
            if with_encoder:
                ca = cache.cross_attention_cache.layers[i]
                out += [ca.keys, ca.values]
        return out

    class Forward(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_attention_mask,
                              use_cache=False).logits

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, encoder_attention_mask, input_ids, encoder_hidden_states):
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
            out = self.model(attention_mask=encoder_attention_mask, encoder_outputs=EncOut(last_hidden_state=encoder_hidden_states),
                             decoder_input_ids=input_ids, cache=cache, use_cache=True)
            return (out.logits, *cache_tensors(out.cache, True))

    class DecoderWithPast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, encoder_attention_mask, input_ids, *past):
            self_data, cross_data = [], []
            for i in range(n_layers):
                dk, dv, ek, ev = past[4 * i: 4 * i + 4]
                self_data.append((dk, dv))
                cross_data.append((ek, ev))
            cache = EncoderDecoderCache(DynamicCache(self_data), DynamicCache(cross_data))
            b = encoder_attention_mask.shape[0]
            # Unused once the cross-attention cache is filled; zeros keep the
            # encoder out of the graph.
            enc = torch.zeros((b, encoder_attention_mask.shape[1], hidden_size(self.model.config)))
            out = self.model(attention_mask=encoder_attention_mask, encoder_outputs=EncOut(last_hidden_state=enc),
                             decoder_input_ids=input_ids, cache=cache, use_cache=True)
            return (out.logits, *cache_tensors(out.cache, False))

    return Forward().eval(), Encoder().eval(), Decoder().eval(), DecoderWithPast().eval()


def decoder_layers(model):
    cfg = model.config
    for k in ("decoder_layers", "num_decoder_layers"):
        if isinstance(getattr(cfg, k, None), int):
            return getattr(cfg, k)
    dec = getattr(cfg, "decoder", None)
    if dec is not None and isinstance(getattr(dec, "num_hidden_layers", None), int):
        return dec.num_hidden_layers
    return cfg.num_layers


def hidden_size(cfg):
    for k in ("d_model", "hidden_size"):
        if isinstance(getattr(cfg, k, None), int):
            return getattr(cfg, k)
    return cfg.encoder.hidden_size


def present_names(n, with_encoder, prefix="present"):
    names = []
    for i in range(n):
        names += [f"{prefix}.{i}.decoder.key", f"{prefix}.{i}.decoder.value"]
        if with_encoder:
            names += [f"{prefix}.{i}.encoder.key", f"{prefix}.{i}.encoder.value"]
    return names


# ---------------------------------------------------------------- inputs


def special_ids(cfg):
    ids = set()
    for k in ("pad_token_id", "eos_token_id", "bos_token_id", "decoder_start_token_id", "unk_token_id"):
        v = getattr(cfg, k, None)
        if isinstance(v, int):
            ids.add(v)
    return ids


def vocab_size(cfg):
    for k in ("vocab_size", "tgt_vocab_size"):
        if isinstance(getattr(cfg, k, None), int):
            return getattr(cfg, k)
    return cfg.decoder.vocab_size


def sample_batch(model, rows, src_lens, tgt_lens, seed):
    """A right-padded batch as a tokenizer and DataCollatorForSeq2Seq make it."""
    torch = _torch()
    cfg = model.config
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else 0
    eos = cfg.eos_token_id if isinstance(cfg.eos_token_id, int) else pad
    lo = max(special_ids(cfg)) + 1 if special_ids(cfg) else 0
    hi = vocab_size(cfg)
    if hi - lo < 4:
        lo = 0
    rng = np.random.default_rng(seed)
    S, T = max(src_lens), max(tgt_lens)
    ids = torch.full((rows, S), pad, dtype=torch.long)
    mask = torch.zeros((rows, S), dtype=torch.long)
    labels = torch.full((rows, T), -100, dtype=torch.long)
    for r in range(rows):
        n = src_lens[r]
        ids[r, : n - 1] = torch.from_numpy(rng.integers(lo, hi, size=n - 1))
        ids[r, n - 1] = eos
        mask[r, :n] = 1
        m = tgt_lens[r]
        labels[r, : m - 1] = torch.from_numpy(rng.integers(lo, hi, size=m - 1))
        labels[r, m - 1] = eos
    dec = decoder_inputs(model, labels)
    dec_mask = (labels != -100).long()
    return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": dec,
            "decoder_attention_mask": dec_mask, "labels": labels}


WINDOW_KEYS = ("sliding_window", "attention_window", "block_size", "local_radius", "global_block_size", "num_global_tokens")


def check_length(cfg):
    """A sequence length for the shape check that exceeds twice every
    attention window or block size the config names (local attention only
    shows at lengths beyond them), within the position table."""
    sizes = [7]
    for c in [cfg] + [getattr(cfg, k, None) for k in ("encoder", "decoder")]:
        for k in WINDOW_KEYS:
            v = getattr(c, k, None) if c is not None else None
            for x in (v if isinstance(v, (list, tuple)) else [v]):
                if isinstance(x, int) and x > 0:
                    sizes.append(2 * x + 3)
    limit = 40
    for k in ("max_position_embeddings", "max_encoder_position_embeddings", "max_decoder_position_embeddings"):
        v = getattr(cfg, k, None)
        if isinstance(v, int) and v > 8:
            limit = min(limit, v - 4)
    return min(max(sizes), limit)


def decoder_inputs(model, labels):
    """decoder_input_ids as HF's DataCollatorForSeq2Seq builds them."""
    torch = _torch()
    if hasattr(model, "prepare_decoder_input_ids_from_labels"):
        return model.prepare_decoder_input_ids_from_labels(labels=labels)
    cfg = model.config
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else 0
    dec = torch.full_like(labels, pad)
    dec[:, 0] = cfg.decoder_start_token_id
    dec[:, 1:] = labels[:, :-1]
    return dec.masked_fill(dec == -100, pad)


# ---------------------------------------------------------------- exporters


def strip_prefix(m, prefix="model."):
    """Renames initializers "model.X" -> "X" (the state_dict names)."""
    ren = {}
    for init in m.graph.initializer:
        if init.name.startswith(prefix):
            ren[init.name] = init.name[len(prefix):]
            init.name = ren[init.name]
    for node in m.graph.node:
        for i, n in enumerate(node.input):
            if n in ren:
                node.input[i] = ren[n]
    for vi in list(m.graph.input) + list(m.graph.value_info):
        if vi.name in ren:
            vi.name = ren[vi.name]


def tidy(m):
    """Drops doc strings and metadata (source paths, stack traces) so reruns
    give identical files."""
    for node in m.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
    del m.metadata_props[:]
    m.producer_name = m.producer_name or "pytorch"


def export_torchscript(module, args, path, inputs, outputs, dyn, opset, training=False):
    import onnx
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, path, input_names=inputs, output_names=outputs, dynamic_axes=dyn,
            opset_version=opset, dynamo=False, do_constant_folding=False, export_params=True,
            # With initializers kept as inputs the exporter skips its
            # "deduplicate initializers" pass, which in eval mode merges
            # tensors of equal contents (all-ones LayerNorm weights of a fresh
            # model, Marian's two position tables): each parameter keeps its
            # own initializer. They are taken out of the inputs again below.
            keep_initializers_as_inputs=True,
            training=torch.onnx.TrainingMode.TRAINING if training else torch.onnx.TrainingMode.EVAL,
        )
    m = onnx.load(path)
    inits = {i.name for i in m.graph.initializer}
    kept = [i for i in m.graph.input if i.name not in inits]
    del m.graph.input[:]
    m.graph.input.extend(kept)
    strip_prefix(m)
    tidy(m)
    onnx.checker.check_model(m)
    onnx.save(m, path)


def export_dynamo(module, args, path, inputs, outputs, dyn, opset, training=False):
    import inspect

    import onnx
    import torch

    dims = {}
    shapes = []
    for name in inputs:
        axes = dyn.get(name, {})
        shapes.append({ax: dims.setdefault(label, torch.export.Dim(label.replace(" ", "_").replace("+", "p"), min=1, max=1024))
                       for ax, label in axes.items()} or None)
    # torch.export wants the shapes of a *args parameter as one tuple
    params = list(inspect.signature(module.forward).parameters.values())
    for i, p in enumerate(params):
        if p.kind == inspect.Parameter.VAR_POSITIONAL:
            shapes = shapes[:i] + [tuple(shapes[i:])]
            break
    module.train(training)
    try:
        prog = _dynamo_export(torch, module, args, inputs, outputs, shapes, opset)
    finally:
        module.eval()
    prog.save(path, external_data=False)
    m = onnx.load(path)
    strip_prefix(m)
    del m.graph.value_info[:]
    tidy(m)
    onnx.checker.check_model(m)
    onnx.save(m, path)


def _dynamo_export(torch, module, args, inputs, outputs, shapes, opset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.onnx.export(
            module, args, None, input_names=inputs, output_names=outputs, dynamic_shapes=tuple(shapes),
            opset_version=max(opset, 18), dynamo=True,
            optimize=False,  # the optimizer folds Transpose(W) into unnamed initializers
            external_data=False, verbose=False,
        )


def run_ort(path, feeds):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    wanted = {i.name for i in sess.get_inputs()}
    got = sess.run(names, {k: np.ascontiguousarray(v.numpy() if hasattr(v, "numpy") else v)
                           for k, v in feeds.items() if k in wanted})
    return dict(zip(names, got))


def max_err(got, want, masks=None):
    """Largest |got - want| over the outputs, counting only the positions a
    mask marks as real (padding positions carry values no later step reads:
    encoder states and cross-attention keys of padded source tokens, logits
    of padded target positions)."""
    err = 0.0
    for k, w in want.items():
        if k not in got:
            raise ExportError(f"output {k} missing")
        g = got[k]
        if tuple(g.shape) != tuple(w.shape):
            return float("inf")
        d = np.abs(g - w)
        if masks and k in masks:
            mask, axis = masks[k]
            m = np.asarray(mask, dtype=bool)
            shape = [1] * d.ndim
            shape[0], shape[axis] = m.shape[0], m.shape[1]
            d = np.where(m.reshape(shape), d, 0.0)
        err = max(err, float(d.max()) if d.size else 0.0)
    return err


def inference_copy(path):
    """A copy of the graph at path with every Dropout node in inference mode
    (its training_mode input false), and the number of Dropout nodes."""
    import onnx
    from onnx import helper

    m = onnx.load(path)
    n = 0
    for node in m.graph.node:
        if node.op_type == "Dropout":
            n += 1
            while len(node.input) < 3:
                node.input.append("")
            node.input[2] = "export_check_inference_mode"
    m.graph.initializer.append(helper.make_tensor("export_check_inference_mode", onnx.TensorProto.BOOL, [], [False]))
    out = path + ".inference-check.onnx"
    onnx.save(m, out)
    return out, n


def export_checked(name, module, trace_args, check_args, inputs, outputs, dyn, out_dir, opts, record, masks=(None, None),
                   training=False):
    """Exports module with the chosen exporter(s); keeps the first graph whose
    outputs match PyTorch on both the trace and the check inputs. With
    training, the graph is exported in training mode (its Dropout nodes
    kept, for ortrain to train with dropout) and checked with them in
    inference mode."""
    torch = _torch()
    path = os.path.join(out_dir, name)
    module.eval()
    try:
        with torch.no_grad():
            refs = [dict(zip(outputs, [t.numpy() for t in _as_tuple(module(*a))])) for a in (trace_args, check_args)]
    except Exception as e:
        raise ExportError(f"{name}: the model does not run the way this graph needs: {why(e)}") from e
    exporters = {"auto": ("dynamo", "torchscript"), "dynamo": ("dynamo",), "torchscript": ("torchscript",)}[opts.exporter]
    tried = []
    for exp in exporters:
        try:
            try:
                (export_dynamo if exp == "dynamo" else export_torchscript)(module, trace_args, path, inputs, outputs, dyn,
                                                                           opts.opset, training=training)
            finally:
                module.eval()
            check, dropouts = path, 0
            if training:
                check, dropouts = inference_copy(path)
            try:
                errs = [max_err(run_ort(check, dict(zip(inputs, a))), r, m) for a, r, m in zip((trace_args, check_args), refs, masks)]
            finally:
                if check != path:
                    os.remove(check)
            err = max(errs)
            if err <= opts.tolerance:
                record[name] = {"exporter": exp, "max_abs_err_vs_pytorch": err, "rejected": tried}
                if training:
                    record[name]["dropout_nodes"] = dropouts
                return
            tried.append({"exporter": exp, "why": f"outputs differ from PyTorch by {err:.3g} (trace shapes {errs[0]:.3g}, other shapes {errs[1]:.3g})"})
        except Exception as e:  # try the next exporter, and say why this one failed
            tried.append({"exporter": exp, "why": why(e)})
        if os.path.exists(path):
            os.remove(path)
    raise ExportError(f"{name}: no exporter produced a graph equal to PyTorch: " +
                      "; ".join(f"{t['exporter']}: {t['why']}" for t in tried))


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


# ---------------------------------------------------------------- main


def load_model(src):
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    cfg = AutoConfig.from_pretrained(src)
    if not getattr(cfg, "is_encoder_decoder", False):
        raise ExportError(f"{src}: model_type {cfg.model_type!r} is not an encoder-decoder model")
    model = AutoModelForSeq2SeqLM.from_pretrained(src, attn_implementation="eager")
    return model.eval()


def export(src, out, opts):
    torch = _torch()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = load_model(src)
    n_layers = decoder_layers(model)
    os.makedirs(out, exist_ok=True)
    for f in ("model.onnx", "encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx"):
        if os.path.exists(os.path.join(out, f)):
            os.remove(os.path.join(out, f))
    # Traced on one batch, checked on another of other shapes; both padded.
    tb = sample_batch(model, 2, [5, 3], [4, 2], seed=1)
    with torch.no_grad():
        enc_out = model.get_encoder()(input_ids=tb["input_ids"], attention_mask=tb["attention_mask"])
    fwd, enc, dec, wp = make_wrappers(model, type(enc_out))
    n = check_length(model.config)
    cb = sample_batch(model, 3, [n, 4, n - 1], [n - 1, 5, 4], seed=2)
    record = {}

    dyn = {
        "input_ids": {0: "batch_size", 1: "encoder_sequence_length"},
        "attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
        "decoder_input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
        "decoder_attention_mask": {0: "batch_size", 1: "decoder_sequence_length"},
        "logits": {0: "batch_size", 1: "decoder_sequence_length"},
    }
    args = lambda b: tuple(b[k] for k in FORWARD_INPUTS)
    fwd_masks = [{"logits": (b["decoder_attention_mask"], 1)} for b in (tb, cb)]
    try:
        export_checked("model.onnx", fwd, args(tb), args(cb), FORWARD_INPUTS, ["logits"], dyn, out, opts, record,
                       masks=fwd_masks, training=opts.dropout)
    except ExportError as e:
        if not opts.dropout:
            raise
        # Training mode can bring more than Dropout (NLLB-MoE's LayerDrop
        # draws a random number in Python): fall back to eval mode, loudly.
        print(f"export_model: warning: model.onnx in training mode failed ({e}); exported in eval mode instead, "
              "so ortrain will train it without dropout", file=sys.stderr)
        export_checked("model.onnx", fwd, args(tb), args(cb), FORWARD_INPUTS, ["logits"], dyn, out, opts, record,
                       masks=fwd_masks, training=False)
        record["model.onnx"]["training_mode_failed"] = str(e)

    if not opts.no_kv:
        enc_in = ["input_ids", "attention_mask"]
        enc_dyn = {k: dyn[k] for k in enc_in}
        enc_dyn["last_hidden_state"] = {0: "batch_size", 1: "encoder_sequence_length"}
        export_checked("encoder_model.onnx", enc, (tb["input_ids"], tb["attention_mask"]),
                       (cb["input_ids"], cb["attention_mask"]), enc_in, ["last_hidden_state"], enc_dyn, out, opts, record,
                       masks=[{"last_hidden_state": (b["attention_mask"], 1)} for b in (tb, cb)])

        with torch.no_grad():
            t_enc = enc(tb["input_ids"], tb["attention_mask"])
            c_enc = enc(cb["input_ids"], cb["attention_mask"])
        pres_all = present_names(n_layers, True)
        dec_in = ["encoder_attention_mask", "input_ids", "encoder_hidden_states"]
        dec_dyn = {"encoder_attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
                   "input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
                   "encoder_hidden_states": {0: "batch_size", 1: "encoder_sequence_length"},
                   "logits": {0: "batch_size", 1: "decoder_sequence_length"}}
        for i in range(n_layers):
            for kv in ("key", "value"):
                dec_dyn[f"present.{i}.decoder.{kv}"] = {0: "batch_size", 2: "decoder_sequence_length"}
                dec_dyn[f"present.{i}.encoder.{kv}"] = {0: "batch_size", 2: "encoder_sequence_length"}
        t_dec = (tb["attention_mask"], tb["decoder_input_ids"][:, :2], t_enc)
        c_dec = (cb["attention_mask"], cb["decoder_input_ids"][:, :3], c_enc)
        cross = lambda b: {n: (b["attention_mask"], 2) for n in pres_all if ".encoder." in n}
        export_checked("decoder_model.onnx", dec, t_dec, c_dec, dec_in, ["logits"] + pres_all, dec_dyn, out, opts, record,
                       masks=[cross(tb), cross(cb)])

        past_names = present_names(n_layers, True, "past_key_values")
        pres_dec = present_names(n_layers, False)
        wp_in = ["encoder_attention_mask", "input_ids"] + past_names
        wp_dyn = {"encoder_attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
                  "input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
                  "logits": {0: "batch_size", 1: "decoder_sequence_length"}}
        for i in range(n_layers):
            for kv in ("key", "value"):
                wp_dyn[f"past_key_values.{i}.decoder.{kv}"] = {0: "batch_size", 2: "past_decoder_sequence_length"}
                wp_dyn[f"past_key_values.{i}.encoder.{kv}"] = {0: "batch_size", 2: "encoder_sequence_length"}
                wp_dyn[f"present.{i}.decoder.{kv}"] = {0: "batch_size", 2: "past_decoder_sequence_length + 1"}
        with torch.no_grad():
            t_past = list(dec(*t_dec)[1:])
            c_past = list(dec(*c_dec)[1:])
        t_wp = (tb["attention_mask"], tb["decoder_input_ids"][:, 2:3], *t_past)
        c_wp = (cb["attention_mask"], cb["decoder_input_ids"][:, 3:4], *c_past)
        export_checked("decoder_with_past_model.onnx", wp, t_wp, c_wp, wp_in, ["logits"] + pres_dec, wp_dyn, out, opts, record)

        # The cache must reproduce the full forward: the with-past logits of
        # the 4th token equal the forward graph's logits at position 4.
        with torch.no_grad():
            step = wp(*c_wp)[0][:, -1]
            full = fwd(cb["input_ids"], cb["attention_mask"], cb["decoder_input_ids"][:, :4],
                       torch.ones_like(cb["decoder_input_ids"][:, :4]))[:, -1]
        cache_err = float((step - full).abs().max())
        record["cache_vs_full_forward_max_abs_err"] = cache_err
        if cache_err > opts.tolerance:
            raise ExportError(f"decoder with past disagrees with the full forward by {cache_err:.3g}")

    model.save_pretrained(out)  # model.safetensors, config.json, generation_config.json
    copied = []
    for f in TOKENIZER_FILES:
        p = os.path.join(src, f)
        if os.path.isfile(p):
            shutil.copyfile(p, os.path.join(out, f))
            copied.append(f)
    import onnx
    import onnxruntime
    import transformers

    report = {
        "source": os.path.abspath(src) if opts.record_source else os.path.basename(os.path.normpath(src)),
        "model_type": model.config.model_type,
        "architecture": type(model).__name__,
        "graphs": record,
        "tokenizer_files": copied,
        "opset": opts.opset,
        "dropout": bool(opts.dropout),
        "tolerance": opts.tolerance,
        "versions": {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__,
                     "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
    }
    with open(os.path.join(out, "export.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
        f.write("\n")
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description="Export a transformers seq2seq checkpoint for ortrain.")
    ap.add_argument("checkpoint", help="folder written by save_pretrained (config.json, weights, tokenizer files)")
    ap.add_argument("out", help="output folder")
    ap.add_argument("--exporter", choices=("auto", "dynamo", "torchscript"), default="auto",
                    help="auto: dynamo where its graph matches PyTorch, else TorchScript (default)")
    ap.add_argument("--opset", type=int, default=17, help="ONNX opset (TorchScript; dynamo uses at least 18)")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="largest |onnxruntime - PyTorch| accepted")
    ap.add_argument("--no-kv", action="store_true", help="export model.onnx only (ortrain then generates by recomputing)")
    ap.add_argument("--no-dropout", action="store_true",
                    help="export model.onnx in eval mode, without its Dropout nodes: ortrain then trains without dropout "
                         "(default: training mode, so that ortrain trains with the model's dropout as HF does; the "
                         "KV-cache graphs, which generation uses, are always in eval mode)")
    ap.add_argument("--record-source", action="store_true", help="record the checkpoint's absolute path in export.json")
    opts = ap.parse_args(argv)
    # Dropout nodes in model.onnx are for training; a folder without the
    # KV-cache graphs generates with model.onnx, which must then be in eval mode.
    opts.dropout = not opts.no_dropout and not opts.no_kv
    quiet()
    try:
        rep = export(opts.checkpoint, opts.out, opts)
    except ExportError as e:
        print(f"export_model: {e}", file=sys.stderr)
        return 1
    for g, r in sorted(rep["graphs"].items()):
        if isinstance(r, dict):
            extra = f", {r['dropout_nodes']} Dropout nodes kept for training" if "dropout_nodes" in r else ""
            print(f"{g}: {r['exporter']} (max |ORT - PyTorch| {r['max_abs_err_vs_pytorch']:.2g}{extra})")
    print(f"wrote {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
