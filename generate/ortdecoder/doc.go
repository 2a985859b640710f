// Package ortdecoder implements generate.Decoder over ONNX Runtime for exported
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
// The encoder output and the key/value cache stay in ONNX Runtime values, in
// the session's device memory (outputs bound to the device), from one step
// to the next and are fed back without a copy; only the logits come to host
// memory. Reordering rows (beam search, dropping finished rows) gathers the
// decoder cache along the batch axis inside the decoder-with-past graph (a
// Gather added in front of it; graphs with external data use the one-node
// Gather graph below instead); the encoder-side tensors (hidden states and
// cross-attention cache) are identical for the rows of one source and are
// only gathered, by a one-node Gather graph on the same device, when the
// rows' sources change. Options.HostReorder instead brings every output to
// host memory and gathers rows in Go.
package ortdecoder
