// Package predict runs a prediction job over a file of source texts: it
// encodes them, generates in batches through a generate/ortdecoder model with
// Hugging Face generate() semantics, and writes one prediction per line in
// input order.
//
// With reference files the predictions are scored with BLEU (sacrebleu
// defaults) and ROUGE (rouge-score F-measure means) into a JSON Report, and
// the metrics' sufficient statistics are written beside the predictions so
// that shards run apart (Options.Shard of Options.Shards, see ShardRange) can
// be merged into exactly the unsharded corpus score (ortrain score --merge).
//
// Errors caused by the user's files match ortrain.ErrInput with errors.Is;
// options that contradict each other or the model match
// ortrain.ErrSettings.
package predict
