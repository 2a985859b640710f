#!/usr/bin/env python3
"""Generation speed: `ortrain predict` vs HF generate (PyTorch) vs CTranslate2.

Builds a t5-small-sized T5 (T5Config defaults: d_model 512, d_ff 2048, 6+6
layers, 8 heads, vocab 32128; seeded random weights, since no checkpoint can
be downloaded here), exports it in Optimum's layout with the fixture exporters
(scripts/fixtures/make_tiny_models.py), converts the same HF folder with
ct2-transformers-converter (offline), and times greedy and beam-4 generation
of the same sources on every engine with the same number of threads. Every
output is forced to exactly --new-tokens tokens (min = max new tokens) so the
engines do the same work whatever the random model prefers.

sentences/s are medians over --repeats runs of the generation itself (model
loading excluded; ortrain's figure is the report's generation time, which
includes tokenization and decoding). Every engine gets --threads threads
(torch.set_num_threads, CTranslate2 intra_threads, ortrain --threads and
GOMAXPROCS). Token agreement of ortrain with HF is reported too. On a loaded
machine prefer --threads 1: OpenMP's spinning threads collapse when cores are
oversubscribed, which distorts multi-threaded figures.

Usage: scripts/bench/generate_bench.sh [--sentences 64] [--batch-size 16] [--threads 2] [--new-tokens 32]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import transformers
from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
import make_tiny_models as mtm  # noqa: E402  (the fixture exporters)


def build_model(work):
    hf_dir = os.path.join(work, "t5-small-random-v2")
    if os.path.exists(os.path.join(hf_dir, "decoder_with_past_model.onnx")):
        return hf_dir
    os.makedirs(hf_dir, exist_ok=True)
    torch.manual_seed(0)
    cfg = T5Config(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6,
                   num_heads=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    model = T5ForConditionalGeneration(cfg).eval()
    with torch.no_grad():
        # a freshly initialised T5 predicts <pad> everywhere; a zero embedding row
        # for it gives varied outputs (the same work, but agreement is then telling)
        model.shared.weight[0].zero_()
    model.save_pretrained(hf_dir)
    save_tokenizer(hf_dir, cfg.vocab_size)
    n = cfg.num_layers
    ids = torch.randint(3, 1000, (2, 7))
    mask = torch.ones_like(ids)
    dec_ids = torch.randint(3, 1000, (2, 3))
    mtm.export_ts(mtm.Encoder(model).eval(), (ids, mask), os.path.join(hf_dir, "encoder_model.onnx"),
                  ["input_ids", "attention_mask"], ["last_hidden_state"],
                  {"input_ids": {0: "batch_size", 1: "encoder_sequence_length"},
                   "attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
                   "last_hidden_state": {0: "batch_size", 1: "encoder_sequence_length"}})
    with torch.no_grad():
        enc = model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    pres_all = mtm.present_names(n, True)
    dyn = {"encoder_attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
           "input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
           "encoder_hidden_states": {0: "batch_size", 1: "encoder_sequence_length"},
           "logits": {0: "batch_size", 1: "decoder_sequence_length"}}
    for i in range(n):
        for kv in ("key", "value"):
            dyn[f"present.{i}.decoder.{kv}"] = {0: "batch_size", 2: "decoder_sequence_length"}
            dyn[f"present.{i}.encoder.{kv}"] = {0: "batch_size", 2: "encoder_sequence_length"}
    dec = mtm.Decoder(model, n).eval()
    mtm.export_ts(dec, (mask, dec_ids[:, :2], enc), os.path.join(hf_dir, "decoder_model.onnx"),
                  ["encoder_attention_mask", "input_ids", "encoder_hidden_states"], ["logits"] + pres_all, dyn)
    past_names = mtm.present_names(n, True, "past_key_values")
    wp_dyn = {"encoder_attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
              "input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
              "logits": {0: "batch_size", 1: "decoder_sequence_length"}}
    for i in range(n):
        for kv in ("key", "value"):
            wp_dyn[f"past_key_values.{i}.decoder.{kv}"] = {0: "batch_size", 2: "past_decoder_sequence_length"}
            wp_dyn[f"past_key_values.{i}.encoder.{kv}"] = {0: "batch_size", 2: "encoder_sequence_length"}
            wp_dyn[f"present.{i}.decoder.{kv}"] = {0: "batch_size", 2: "past_decoder_sequence_length + 1"}
    with torch.no_grad():
        past = list(dec(mask, dec_ids[:, :2], enc)[1:])
    mtm.export_ts(mtm.DecoderWithPast(model, n).eval(), (mask, dec_ids[:, 2:3], *past),
                  os.path.join(hf_dir, "decoder_with_past_model.onnx"),
                  ["encoder_attention_mask", "input_ids"] + past_names, ["logits"] + mtm.present_names(n, False), wp_dyn)
    return hf_dir


def save_tokenizer(hf_dir, vocab_size):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    vocab.update({f"w{i}": i for i in range(3, vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok.add_special_tokens(["<pad>", "</s>", "<unk>"])
    path = os.path.join(hf_dir, "tokenizer.json")
    tok.save(path)
    PreTrainedTokenizerFast(tokenizer_file=path, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(hf_dir)


def median_time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/ortrain-generate-bench")
    ap.add_argument("--ortrain", required=True, help="the ortrain binary")
    ap.add_argument("--sentences", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(HERE, "generate_bench.results.json"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    torch.set_num_threads(args.threads)
    hf_dir = build_model(args.work)
    tok = PreTrainedTokenizerFast.from_pretrained(hf_dir)
    model = T5ForConditionalGeneration.from_pretrained(hf_dir).eval()

    rng = np.random.default_rng(5)
    lines = [" ".join(f"w{int(x)}" for x in rng.integers(3, 32000, size=int(rng.integers(10, 31))))
             for _ in range(args.sentences)]
    inp = os.path.join(args.work, "input.txt")
    with open(inp, "w") as f:
        f.write("\n".join(lines) + "\n")
    k = args.new_tokens
    gen_file = os.path.join(args.work, "gen.json")
    with open(gen_file, "w") as f:
        json.dump({"min_new_tokens": k, "max_new_tokens": k}, f)

    import ctranslate2
    ct2_dir = os.path.join(args.work, "ct2-v2")
    if not os.path.exists(os.path.join(ct2_dir, "model.bin")):
        subprocess.run(["ct2-transformers-converter", "--model", hf_dir, "--output_dir", ct2_dir, "--force"],
                       check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    translator = ctranslate2.Translator(ct2_dir, device="cpu", inter_threads=1, intra_threads=args.threads)
    src_tokens = [tok.convert_ids_to_tokens(tok(l)["input_ids"]) for l in lines]

    results = {"command": "scripts/bench/generate_bench.sh " + " ".join(sys.argv[1:]),
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
               "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                            "ctranslate2": ctranslate2.__version__},
               "settings": vars(args), "modes": {}}
    for beams in (1, 4):
        def hf_run():
            preds = []
            for s in range(0, len(lines), args.batch_size):
                enc = tok(lines[s:s + args.batch_size], padding=True, return_tensors="pt")
                with torch.no_grad():
                    out = model.generate(**enc, num_beams=beams, min_new_tokens=k, max_new_tokens=k)
                preds += tok.batch_decode(out, skip_special_tokens=True)
            return preds

        def ct2_run():
            res = translator.translate_batch(src_tokens, beam_size=beams, max_decoding_length=k,
                                             min_decoding_length=k, max_batch_size=args.batch_size)
            special = {"<pad>", "</s>", "<unk>"}
            return [" ".join(t for t in r.hypotheses[0] if t not in special) for r in res]

        def ortrain_run():
            out = os.path.join(args.work, f"pred{beams}.txt")
            cmd = [args.ortrain, "predict", "--model", hf_dir, "--input", inp, "--output", out, "--refs", inp,
                   "--num-beams", str(beams), "--batch-size", str(args.batch_size), "--threads", str(args.threads),
                   "--generation-config", gen_file, "--no-progress"]
            # same cores: the Go side (beam rows in parallel) gets as many threads as ONNX Runtime
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "GOMAXPROCS": str(args.threads)})
            with open(out + ".metrics.json") as f:
                rep = json.load(f)
            with open(out) as f:
                return rep["seconds"], f.read().splitlines()

        # interleave the engines, repeat by repeat, so that a change in the
        # machine's load shifts all of them alike
        hf_ts, ct_ts, or_ts = [], [], []
        for _ in range(args.repeats):
            t, hf_preds = median_time(hf_run, 1)
            hf_ts.append(t)
            t, ct_preds = median_time(ct2_run, 1)
            ct_ts.append(t)
            t, or_preds = ortrain_run()
            or_ts.append(t)
        hf_t, ct_t, or_t = statistics.median(hf_ts), statistics.median(ct_ts), statistics.median(or_ts)
        n = len(lines)
        mode = {
            "hf_sentences_per_s": n / hf_t, "ct2_sentences_per_s": n / ct_t, "ortrain_sentences_per_s": n / or_t,
            "ortrain_over_hf": hf_t / or_t, "ortrain_over_ct2": ct_t / or_t,
            "ortrain_equal_to_hf_predictions": sum(a == b for a, b in zip(or_preds, hf_preds)),
            "ct2_equal_to_hf_predictions": sum(a == b for a, b in zip(ct_preds, hf_preds)),
            "sentences": n,
            "seconds": {"hf": hf_ts, "ct2": ct_ts, "ortrain": or_ts},
            "load_average": os.getloadavg(),
        }
        results["modes"]["greedy" if beams == 1 else f"beam{beams}"] = mode
        print(f"beams {beams}: HF {mode['hf_sentences_per_s']:.1f}/s, CTranslate2 {mode['ct2_sentences_per_s']:.1f}/s, "
              f"ortrain {mode['ortrain_sentences_per_s']:.1f}/s (x{mode['ortrain_over_hf']:.2f} HF, "
              f"x{mode['ortrain_over_ct2']:.2f} CT2); ortrain = HF on {mode['ortrain_equal_to_hf_predictions']}/{n}",
              flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
