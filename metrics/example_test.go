package metrics_test

import (
	"fmt"
	"log"

	"github.com/ortrain/ortrain/metrics"
)

// Corpus BLEU as sacrebleu computes it (13a tokenizer, exp smoothing),
// accumulated segment by segment; every segment may have several
// references. sacrebleu 2.6.0's corpus_score prints the same.
func ExampleBLEU() {
	bleu, err := metrics.NewBLEU(metrics.BLEUOptions{})
	if err != nil {
		log.Fatal(err)
	}
	hyps := []string{"The cat sat on the mat.", "It is raining today."}
	refs := [][]string{
		{"The cat sat on the mat.", "A cat was sitting on the mat."},
		{"Today it rains.", "It is raining today!"},
	}
	for i := range hyps {
		if err := bleu.Add(hyps[i], refs[i]); err != nil {
			log.Fatal(err)
		}
	}
	s := bleu.Score()
	fmt.Printf("BLEU %.2f, BP %.3f, %d/%d tokens\n", s.Score, s.BP, s.SysLen, s.RefLen)
	fmt.Println(s.Signature)
	// Output:
	// BLEU 90.01, BP 1.000, 12/12 tokens
	// nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0
}

// ROUGE as rouge-score computes it: each prediction against its best
// target per type (score_multi), averaged over the pairs; rouge-score 0.1.2
// gives the same means.
func ExampleROUGE() {
	rouge, err := metrics.NewROUGE(metrics.ROUGEOptions{Types: []string{"rouge1", "rouge2", "rougeL"}, UseStemmer: true}, false)
	if err != nil {
		log.Fatal(err)
	}
	preds := []string{"the cats are sitting on the mat", "rain is expected today"}
	targets := [][]string{{"a cat sat on the mat"}, {"it will rain today", "rain expected today"}}
	if _, err := rouge.AddBatch(preds, targets, 1); err != nil {
		log.Fatal(err)
	}
	for i, typ := range rouge.Types() {
		m := rouge.Mean()[i]
		fmt.Printf("%s P %.4f R %.4f F %.4f\n", typ, m.Precision, m.Recall, m.FMeasure)
	}
	// Output:
	// rouge1 P 0.6607 R 0.8333 F 0.7363
	// rouge2 P 0.3333 R 0.4500 F 0.3818
	// rougeL P 0.6607 R 0.8333 F 0.7363
}
