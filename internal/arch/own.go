package arch

// own lists the architectures that ortrain itself defines (not transformers
// models, so not in the generated table).
func own() []Arch {
	return []Arch{{
		// internal/demo: ortrain's embedded default model. It has no HF
		// forward, so gradient accumulation is the classic 1/n rule.
		ModelType:       "ortrain-demo",
		Class:           "OrtrainDemoSeq2Seq",
		Supported:       true,
		DecoderStart:    StartToken,
		DecoderStartKey: "decoder_start_token_id",
	}}
}
