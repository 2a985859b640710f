#!/usr/bin/env python3
"""Reference outputs of Hugging Face generate() on a scripted seq2seq model.

The model has no weights: its next-token logits are a deterministic function of
(source tokens, decoder prefix), so that generate/scripted_test.go can compute
exactly the same logits in Go and compare the search itself, token for token,
independently of ONNX Runtime. THE SCRIPTED LOGITS FUNCTION (mirrored in
generate/scripted_test.go; keep the two in step):

  mix(x)  = splitmix64 finalizer over uint64 (wrapping arithmetic):
            x ^= x >> 30; x *= 0xBF58476D1CE4E5B9; x ^= x >> 27;
            x *= 0x94D049BB133111EB; x ^= x >> 31
  G       = 0x9E3779B97F4A7C15
  src_key = fold of the unpadded source ids: h = seed; for t: h = mix((h ^ (t+1)) + G)
  key     = fold of the decoder prefix (start token included), starting from
            mix(src_key ^ 0xD1CE): for t: h = mix((h ^ (t+1)) + G)
  logit[v] = ((mix(key ^ ((v+1)*G)) >> 58) * 64 + v) / 1024          (in [0, 4), distinct per row)
           + slope_i * (len(prefix) - (2 + src_key % 7))   for each bias token i (EOS-like tokens)

Every value is a multiple of 1/1024 below 64, hence exact in float32 in both
languages. The bias makes EOS unlikely early and likely later, at a different
position per source, so that the finishing logic of both searches is exercised.

Usage: .venv/bin/python scripts/refs/generate_search_refs.py [--out testdata/generate/search/cases.json]
Output: one JSON file (sorted keys) with the generating command, package
versions, the model specs and every case: generation_config.json contents of the
scripted model, generate() kwargs, sources, and HF's sequences and scores.
"""
import argparse
import json
import os
import platform
import sys

import numpy as np
import torch
import transformers
from torch import nn
from transformers import GenerationConfig, GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

M64 = (1 << 64) - 1
G = 0x9E3779B97F4A7C15


def mix(x):
    x &= M64
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    x ^= x >> 31
    return x


def mix_np(x):
    x = x.copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def fold(h, tokens):
    for t in tokens:
        h = mix(((h ^ (int(t) + 1)) + G) & M64)
    return h


def scripted_logits(spec, source, prefix):
    """float32 logits over spec['vocab'] for one row (see the module docstring)."""
    vocab = spec["vocab"]
    src_key = fold(spec["seed"], source)
    key = fold(mix(src_key ^ 0xD1CE), prefix)
    v = np.arange(vocab, dtype=np.uint64)
    with np.errstate(over="ignore"):
        hv = mix_np(np.uint64(key) ^ ((v + np.uint64(1)) * np.uint64(G)))
    k = (hv >> np.uint64(58)).astype(np.float64)
    logits = (k * 64 + np.arange(vocab, dtype=np.float64)) / 1024.0
    shift = len(prefix) - (2 + src_key % 7)
    for b in spec["bias"]:
        logits[b["token"]] += b["slope"] * shift
    out = logits.astype(np.float32)
    assert np.array_equal(out.astype(np.float64), logits), "scripted logits must be exact in float32"
    return out


class ScriptedConfig(PretrainedConfig):
    model_type = "ortrain_scripted_seq2seq"

    def __init__(self, spec=None, max_position_embeddings=None, **kwargs):
        self.spec = spec or {}
        self.vocab_size = self.spec.get("vocab", 1)
        if max_position_embeddings is not None:
            self.max_position_embeddings = max_position_embeddings
        super().__init__(is_encoder_decoder=True, **kwargs)


class ScriptedEncoder(nn.Module):
    main_input_name = "input_ids"

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        # The "hidden state" carries the source ids; the mask says which are real.
        return BaseModelOutput(last_hidden_state=input_ids.to(torch.float64).unsqueeze(-1))


class ScriptedSeq2Seq(PreTrainedModel, GenerationMixin):
    config_class = ScriptedConfig
    main_input_name = "input_ids"

    def __init__(self, config):
        super().__init__(config)
        self.encoder = ScriptedEncoder()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.calls = 0

    def get_encoder(self, *args, **kwargs):
        return self.encoder

    def prepare_inputs_for_generation(self, input_ids, encoder_outputs=None, attention_mask=None, **kwargs):
        return {"decoder_input_ids": input_ids, "encoder_outputs": encoder_outputs, "attention_mask": attention_mask}

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, encoder_outputs=None, **kwargs):
        self.calls += 1
        src = encoder_outputs.last_hidden_state[..., 0].to(torch.int64)
        rows, length = decoder_input_ids.shape
        logits = torch.zeros((rows, length, self.config.spec["vocab"]), dtype=torch.float32)
        for r in range(rows):
            source = [int(t) for t, m in zip(src[r].tolist(), attention_mask[r].tolist()) if m]
            prefix = decoder_input_ids[r].tolist()
            logits[r, -1] = torch.from_numpy(scripted_logits(self.config.spec, source, prefix))
        return Seq2SeqLMOutput(logits=logits)


SPECS = {
    # T5-like ids: pad 0 = decoder start, eos 1 (pad 0 is falsy: beam fill value becomes eos).
    "t5like": {"vocab": 40, "seed": 11, "bias": [{"token": 1, "slope": 0.5}, {"token": 2, "slope": 0.25}]},
    # BART-like ids: bos 0, pad 1, eos 2 = decoder start.
    "bartlike": {"vocab": 48, "seed": 23, "bias": [{"token": 2, "slope": 0.5}, {"token": 5, "slope": 0.25}]},
}

GENCONF = {
    "t5like": {"decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0},
    "bartlike": {"bos_token_id": 0, "decoder_start_token_id": 2, "eos_token_id": 2, "pad_token_id": 1},
}


def make_sources(rng, n, vocab, lo=3, hi=12):
    return [[int(x) for x in rng.integers(3, vocab, size=int(rng.integers(lo, hi + 1)))] for _ in range(n)]


def cases():
    """(name, spec, generation_config.json dict, config.json extras, generate kwargs, batch)."""
    out = []
    add = lambda name, spec, kw, batch=8, gc=None, cfg=None: out.append(
        (name, spec, gc if gc is not None else dict(GENCONF[spec]), cfg or {}, kw, batch))
    for spec in ("t5like", "bartlike"):
        for batch in (1, 8):
            add(f"{spec}/greedy/default/b{batch}", spec, {}, batch)
            add(f"{spec}/beam4/default/b{batch}", spec, {"num_beams": 4}, batch)
        add(f"{spec}/greedy/max_new_tokens7", spec, {"max_new_tokens": 7})
        add(f"{spec}/greedy/max_length9", spec, {"max_length": 9})
        add(f"{spec}/greedy/min_new_tokens6", spec, {"min_new_tokens": 6})
        add(f"{spec}/greedy/min_length8", spec, {"min_length": 8})
        add(f"{spec}/greedy/repetition_penalty1.3", spec, {"repetition_penalty": 1.3})
        add(f"{spec}/greedy/repetition_penalty0.7", spec, {"repetition_penalty": 0.7})
        add(f"{spec}/greedy/no_repeat_ngram1", spec, {"no_repeat_ngram_size": 1, "max_new_tokens": 12})
        add(f"{spec}/greedy/no_repeat_ngram2", spec, {"no_repeat_ngram_size": 2})
        for lp in (0.6, 1.0, 2.0):
            for es in (True, False, "never"):
                add(f"{spec}/beam4/lp{lp}/es{es}", spec, {"num_beams": 4, "length_penalty": lp, "early_stopping": es})
                add(f"{spec}/beam4/lp{lp}/es{es}/b1", spec,
                    {"num_beams": 4, "length_penalty": lp, "early_stopping": es}, 1)
        add(f"{spec}/beam4/lp0/never", spec, {"num_beams": 4, "length_penalty": 0.0, "early_stopping": "never"})
        add(f"{spec}/beam4/lp-0.5", spec, {"num_beams": 4, "length_penalty": -0.5})
        add(f"{spec}/beam4/no_repeat_ngram2", spec, {"num_beams": 4, "no_repeat_ngram_size": 2})
        add(f"{spec}/beam4/no_repeat_ngram3", spec, {"num_beams": 4, "no_repeat_ngram_size": 3, "max_new_tokens": 15})
        add(f"{spec}/beam4/min_new_tokens6", spec, {"num_beams": 4, "min_new_tokens": 6})
        add(f"{spec}/beam4/min_length5/es_true", spec, {"num_beams": 4, "min_length": 5, "early_stopping": True})
        add(f"{spec}/beam4/repetition_penalty1.5", spec, {"num_beams": 4, "repetition_penalty": 1.5})
        add(f"{spec}/beam4/nrs2", spec, {"num_beams": 4, "num_return_sequences": 2})
        add(f"{spec}/beam4/nrs4/lp2", spec, {"num_beams": 4, "num_return_sequences": 4, "length_penalty": 2.0})
        add(f"{spec}/beam2/max_new_tokens5", spec, {"num_beams": 2, "max_new_tokens": 5})
        add(f"{spec}/beam5/max_length12", spec, {"num_beams": 5, "max_length": 12})
        add(f"{spec}/beam3/multi_eos", spec, {"num_beams": 3, "eos_token_id": [SPECS[spec]["bias"][0]["token"],
                                                                              SPECS[spec]["bias"][1]["token"]]})
        add(f"{spec}/greedy/multi_eos", spec, {"eos_token_id": [SPECS[spec]["bias"][0]["token"],
                                                                SPECS[spec]["bias"][1]["token"]]})
        add(f"{spec}/greedy/no_eos", spec, {"max_new_tokens": 6}, gc={k: v for k, v in GENCONF[spec].items()
                                                                        if k != "eos_token_id"})
        add(f"{spec}/beam4/no_eos", spec, {"num_beams": 4, "max_new_tokens": 6},
            gc={k: v for k, v in GENCONF[spec].items() if k != "eos_token_id"})
        add(f"{spec}/beam4/pad_unset", spec, {"num_beams": 4},
            gc={k: v for k, v in GENCONF[spec].items() if k != "pad_token_id"})
        add(f"{spec}/beam4/pad7", spec, {"num_beams": 4}, gc={**GENCONF[spec], "pad_token_id": 7})
        add(f"{spec}/greedy/pad7", spec, {}, gc={**GENCONF[spec], "pad_token_id": 7})
        add(f"{spec}/modelconfig/beam4_lp2_nrs2", spec, {},
            gc={**GENCONF[spec], "num_beams": 4, "length_penalty": 2.0, "num_return_sequences": 2,
                "max_length": 14, "early_stopping": True, "no_repeat_ngram_size": 3})
        add(f"{spec}/max_position_embeddings10", spec, {"num_beams": 4}, cfg={"max_position_embeddings": 10})
    # forced BOS / EOS (BART-like: force bos 0 first, eos 2 at max_length - 1)
    for kind, kw in (("greedy", {}), ("beam4", {"num_beams": 4})):
        add(f"bartlike/{kind}/forced_bos", "bartlike", {**kw, "forced_bos_token_id": 0})
        add(f"bartlike/{kind}/forced_eos", "bartlike", {**kw, "forced_eos_token_id": 2, "max_new_tokens": 6})
        add(f"bartlike/{kind}/forced_bos_eos", "bartlike",
            {**kw, "forced_bos_token_id": 0, "forced_eos_token_id": [2, 5], "max_length": 8})
        add(f"t5like/{kind}/forced_bos_eos", "t5like",
            {**kw, "forced_bos_token_id": 9, "forced_eos_token_id": 1, "max_new_tokens": 9, "min_new_tokens": 3})
    # config.json fallback: no generation_config.json, ids and defaults from config.json
    add("bartlike/configjson/beam4", "bartlike", {}, gc={},
        cfg={**GENCONF["bartlike"], "num_beams": 4, "forced_eos_token_id": 2, "max_length": 16})
    # bad_words_ids (NoBadWordsLogitsProcessor): single tokens, sequences, and a lone EOS (filtered out)
    for kind, kw in (("greedy", {}), ("beam4", {"num_beams": 4})):
        add(f"t5like/{kind}/bad_words", "t5like", {**kw, "bad_words_ids": [[2], [7, 9], [20, 21, 22], [1]]})
        add(f"bartlike/{kind}/bad_words", "bartlike", {**kw, "bad_words_ids": [[5], [2, 11], [1]]})
    # Marian-like config.json: bad_words_ids [[pad]] and decoder start = pad, read from config.json
    add("t5like/configjson/marianlike", "t5like", {}, gc={},
        cfg={"decoder_start_token_id": 3, "pad_token_id": 3, "eos_token_id": 1, "bad_words_ids": [[3]],
             "num_beams": 4, "max_length": 14})
    return out


def finite_or_none(x):
    x = float(x)
    return x if np.isfinite(x) else None


def pad_batch(sources, pad):
    width = max(len(s) for s in sources)
    ids = [s + [pad] * (width - len(s)) for s in sources]
    mask = [[1] * len(s) + [0] * (width - len(s)) for s in sources]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)


def run_case(name, spec_name, gc, cfg, kwargs, batch, rng):
    spec = SPECS[spec_name]
    config = ScriptedConfig(spec=spec, **{k: v for k, v in cfg.items() if k == "max_position_embeddings"})
    model = ScriptedSeq2Seq(config).eval()
    if gc:
        model.generation_config = GenerationConfig.from_dict(dict(gc))
    else:
        # no generation_config.json: HF builds it from config.json (GenerationConfig.from_model_config)
        model.generation_config = GenerationConfig.from_model_config(
            {k: v for k, v in cfg.items() if k != "max_position_embeddings"})
    sources = make_sources(rng, batch, spec["vocab"])
    pad_for_inputs = gc.get("pad_token_id", cfg.get("pad_token_id", 0))
    if pad_for_inputs is None:
        pad_for_inputs = 0
    input_ids, attention_mask = pad_batch(sources, pad_for_inputs)
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                             return_dict_in_generate=True, output_scores=True, **kwargs)
    rec = {
        "name": name, "spec": spec_name, "generation_config": gc, "config": cfg, "kwargs": kwargs,
        "sources": sources, "sequences": out.sequences.tolist(), "forward_calls": model.calls,
    }
    if getattr(out, "sequences_scores", None) is not None:
        rec["sequences_scores"] = [finite_or_none(x) for x in out.sequences_scores.tolist()]
    else:
        # greedy: processed score of each chosen token (rows that already finished get pad and are skipped)
        steps = []
        seq = out.sequences
        prompt = seq.shape[1] - len(out.scores)
        for i, sc in enumerate(out.scores):
            tok = seq[:, prompt + i]
            # -inf (a forced or banned pad token of a finished row) is written as null
            steps.append([finite_or_none(sc[r, tok[r]]) for r in range(seq.shape[0])])
        rec["token_scores"] = steps
    return rec


def topk_values(n, seed, levels):
    """Tie-heavy values for the torch.topk order test (mirrored in generate/topk_test.go):
    level = mix(seed ^ ((i+1)*G)) >> 58 mod levels; level 0 is -inf, else level/2 - 2."""
    i = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = mix_np(np.uint64(seed) ^ ((i + np.uint64(1)) * np.uint64(G)))
    level = ((h >> np.uint64(58)) % np.uint64(levels)).astype(np.float64)
    vals = level / 2.0 - 2.0
    vals[level == 0] = -np.inf
    return torch.from_numpy(vals.astype(np.float32))


def topk_cases():
    out = []
    seed = 1
    for n in (5, 8, 12, 17, 24, 40, 100, 192, 500, 640, 1000, 4096, 128000):
        for k in (1, 2, 3, 4, 8, 10, 16):
            if k > n:
                continue
            for levels in (2, 5):
                seed += 1
                idx = torch.topk(topk_values(n, seed, levels).unsqueeze(0), k).indices[0].tolist()
                out.append({"n": n, "k": k, "seed": seed, "levels": levels, "indices": idx})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="testdata/generate/search/cases.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(1234)
    records = []
    for name, spec, gc, cfg, kw, batch in cases():
        records.append(run_case(name, spec, gc, cfg, kw, batch, rng))
    doc = {
        "command": "python scripts/refs/generate_search_refs.py " + " ".join(sys.argv[1:]),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__, "numpy": np.__version__},
        "specs": SPECS,
        "cases": records,
        # torch.topk's order among tied values (CPU): generate/topk.go must reproduce it
        "topk": topk_cases(),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, sort_keys=True, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    n_eos = sum(1 for r in records for s in r["sequences"] if any(
        t in [b["token"] for b in SPECS[r["spec"]]["bias"]] for t in s[1:]))
    print(f"{len(records)} cases, {sum(len(r['sequences']) for r in records)} sequences "
          f"({n_eos} containing a biased EOS-like token) -> {args.out}")


if __name__ == "__main__":
    main()
