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
// Reordering rows (beam search, dropping finished rows) gathers the encoder
// outputs and the key/value cache along the batch axis in host memory.
package gendec
