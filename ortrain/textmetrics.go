package ortrain

import (
	"fmt"
	"strings"

	"github.com/ortrain/ortrain/metrics"
)

// TextMetricNames are the keys TextMetrics returns.
var TextMetricNames = []string{"bleu", "rouge1", "rouge2", "rougeL", "rougeLsum", "gen_len"}

// PyRound is Python's round(x, n).
func PyRound(x float64, n int) float64 { return pyRound(x, n) }

// TextMetrics is the compute_metrics of HF's translation/summarization
// examples: -100 becomes pad in predictions and labels, both are decoded
// (decode should skip special tokens) and stripped; bleu is
// round(sacrebleu corpus_bleu(preds, [labels]).score, 4) with sacrebleu's
// defaults; rouge1/2/L/Lsum are round(mean F-measure * 100, 4) from
// rouge_score's RougeScorer(use_stemmer=useStemmer).score(label, pred);
// gen_len is round(mean number of non-pad ids per prediction, 4).
func TextMetrics(decode func(ids []int) string, pad int, useStemmer bool) MetricsFunc {
	return func(preds, labels [][]int) (Logs, error) {
		if len(preds) != len(labels) {
			return nil, fmt.Errorf("%d predictions for %d labels", len(preds), len(labels))
		}
		hyps := make([]string, len(preds))
		refs := make([]string, len(labels))
		genLen := 0.0
		for i := range preds {
			p := replaceIgnored(preds[i], pad)
			for _, v := range p {
				if v != pad {
					genLen++
				}
			}
			hyps[i] = strings.TrimSpace(decode(p))
			refs[i] = strings.TrimSpace(decode(replaceIgnored(labels[i], pad)))
		}
		bleu, err := metrics.NewBLEU(metrics.BLEUOptions{Force: true})
		if err != nil {
			return nil, err
		}
		rouge, err := metrics.NewROUGE(metrics.ROUGEOptions{UseStemmer: useStemmer}, false)
		if err != nil {
			return nil, err
		}
		for i := range hyps {
			if err := bleu.Add(hyps[i], []string{refs[i]}); err != nil {
				return nil, err
			}
			if _, err := rouge.Add(hyps[i], []string{refs[i]}); err != nil {
				return nil, err
			}
		}
		out := Logs{{"bleu", pyRound(bleu.Score().Score, 4)}}
		for i, typ := range rouge.Types() {
			out = append(out, Metric{typ, pyRound(rouge.Mean()[i].FMeasure*100, 4)})
		}
		if len(preds) > 0 {
			genLen /= float64(len(preds))
		}
		return append(out, Metric{"gen_len", pyRound(genLen, 4)}), nil
	}
}

func replaceIgnored(ids []int, pad int) []int {
	out := make([]int, len(ids))
	for i, v := range ids {
		if v == -100 {
			v = pad
		}
		out[i] = v
	}
	return out
}
