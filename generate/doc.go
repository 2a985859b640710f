// Package generate runs greedy search, beam search and sampling over a small
// decoder interface, with the semantics of Hugging Face transformers'
// generate() for encoder-decoder models.
//
// The reference is the installed transformers 5.24.0
// (generation/utils.py: _sample, _beam_search and its helpers;
// generation/logits_process.py; generation/configuration_utils.py). Beam
// search is the vectorised algorithm introduced in transformers 4.50:
//
//   - each step keeps max(2, 1+len(eos))·num_beams candidates (torch.topk over
//     num_beams·vocab accumulated log-probabilities);
//   - a candidate that ends in an EOS token, or reaches max_length, is finished;
//     only candidates ranked within the top num_beams may join the finished
//     set, with score sum_logprobs / generated_len^length_penalty, where
//     generated_len counts the generated tokens including the EOS token;
//   - the next running beams are the best num_beams unfinished candidates;
//   - early_stopping true stops a batch item once num_beams hypotheses are
//     finished; false stops it when the best running beam, length-normalised at
//     the current length, cannot beat the worst finished one; "never" uses
//     max_length for that bound when length_penalty > 0;
//   - the output is padded with pad_token_id, except that a pad id of 0 (falsy
//     in Python) or an unset pad id gives eos_token_id[0] (the fill-value quirk),
//     and no eos gives -1. Greedy output pads finished rows with pad_token_id.
//
// Scores are computed in float32 as PyTorch does (log-softmax, float32
// accumulation, the length penalty divisor rounded to float32). Ties are
// broken towards the lower index: torch.argmax returns the first maximum
// (documented); torch.topk's order among exactly equal values is not
// documented, and this package takes the lower flat index (beam·vocab+token)
// first and, when merging finished hypotheses, keeps earlier ones first.
//
// Batch items whose result can no longer change are dropped from the decoder
// (State.Reorder), not merely masked: a finished greedy row, a beam item whose
// finished set is final.
//
// Sampling (do_sample with temperature, top_k, top_p) uses this package's own
// seeded random source, so it is reproducible but not token-identical to
// PyTorch's generator.
package generate
