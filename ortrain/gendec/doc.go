// Package gendec implements generate.Decoder over ONNX Runtime for exported
// encoder-decoder models:
//
//   - KV: Optimum's layout, encoder_model.onnx once, decoder_model.onnx for
//     the first step (its present.* outputs seed the cache) and
//     decoder_with_past_model.onnx for every later step over the last token;
//   - Recompute: one full graph (model.onnx: input_ids, attention_mask,
//     decoder_input_ids → logits) run over the whole prefix each step;
//   - Artifacts: the generation graphs of an ortrain artifact folder, whose
//     parameters are graph inputs, fed the trainer's current parameter
//     values (or the folder's model.safetensors).
//
// The key/value cache stays in ONNX Runtime values from one step to the next
// and is fed back without a copy while the rows keep their order (greedy
// search until a row finishes). Reordering rows (beam search, dropping
// finished rows) gathers the decoder cache along the batch axis in host
// memory; the encoder-side tensors (encoder mask, hidden states and
// cross-attention cache) are identical for the rows of one source and are
// only gathered when the rows' sources change.
package gendec
