package data_test

import (
	"context"
	"fmt"
	"log"

	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/tokenize"
)

// A training epoch as the trainer runs it, resuming after 120 batches of
// epoch 2 (compiled, not run: it needs the model files).
func ExampleDataset_Epoch() {
	ctx := context.Background()
	tok, err := tokenize.Load("models/flan-t5-small")
	if err != nil {
		log.Fatal(err)
	}
	train, err := data.Load(ctx, "train.jsonl", data.Format{SourceLang: "en", TargetLang: "ro"}, tok, data.Options{
		SourcePrefix:    "translate English to Romanian: ",
		MaxSourceLength: 128,
		MaxTargetLength: 128,
		SkipBad:         true,
		CacheDir:        ".cache/ortrain",
	})
	if err != nil {
		log.Fatal(err)
	}
	if len(train.Skipped) > 0 {
		log.Print(data.SkippedReport(train.Skipped))
	}
	col, err := data.CollatorFor(tok, 0) // T5: decoder_start_token_id = pad = 0
	if err != nil {
		log.Fatal(err)
	}
	order := data.Order{BatchSize: 16, Shuffle: true, Seed: 42}
	r := train.Epoch(order, col, 2, 120)
	for r.Next(ctx) {
		b := r.Batch()
		fmt.Println(b.Rows, b.SourceLen, b.TargetLen, r.Position())
	}
	if err := r.Err(); err != nil {
		log.Fatal(err)
	}
}
