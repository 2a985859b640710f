package score

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/ortrain/ortrain/metrics"
)

// Report holds the scores of a finished job.
type Report struct {
	// Metric is metrics.MetricBLEU, MetricCHRF or MetricROUGE.
	Metric string
	// Segments are every line's own scores (Options.PerLine), in input
	// order.
	Segments []metrics.Score
	// Corpus is the corpus score, with its bootstrap estimate when one was
	// asked for; nil with Options.PerLine.
	Corpus metrics.Score
}

// scores are what the report prints: the corpus score or every line's.
func (r *Report) scores() []metrics.Score {
	if r.Corpus != nil {
		return []metrics.Score{r.Corpus}
	}
	return r.Segments
}

// WriteText writes one line per segment or the corpus score: sacrebleu's
// line for BLEU and chrF; for ROUGE a pair's scores on one line, the
// corpus's as a table.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, s := range r.scores() {
		if _, err := fmt.Fprintln(bw, s.String()); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteJSON writes one JSON object per line, one per segment, or the
// corpus score as one indented object. BLEU's object is sacrebleu's
// BLEUScore, chrF's its score and signature, ROUGE's the types in the
// order asked for, each with precision, recall, fmeasure (and low, mid,
// high after a bootstrap); a bootstrap adds sacrebleu's confidence_mean and
// confidence_var to BLEU and chrF.
func (r *Report) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriter(w)
	indent := r.Corpus != nil
	for _, s := range r.scores() {
		if err := writeJSON(bw, s, indent); err != nil {
			return err
		}
	}
	return bw.Flush()
}

type chrfJSON struct {
	Score     float64 `json:"score"`
	Signature string  `json:"signature"`
	*metrics.BootstrapCI
}

func writeJSON(w io.Writer, s metrics.Score, indent bool) error {
	var v any = s
	switch s := s.(type) {
	case metrics.CHRFScore:
		v = chrfJSON{s.Score, s.Signature, s.BootstrapCI}
	case metrics.ROUGEResult:
		return writeROUGEJSON(w, s, indent)
	}
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

// writeROUGEJSON writes {"rouge1": {...}, ...} with the types in the order
// asked for (a Go map would sort them), one type per line when indented.
func writeROUGEJSON(w io.Writer, r metrics.ROUGEResult, indent bool) error {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, t := range r.Types {
		if i > 0 {
			buf.WriteByte(',')
		}
		if indent {
			buf.WriteString("\n  ")
		}
		k, _ := json.Marshal(t)
		buf.Write(k)
		buf.WriteByte(':')
		var v []byte
		if r.Intervals != nil {
			v, _ = json.Marshal(struct {
				metrics.ROUGEScore
				metrics.ROUGEInterval
			}{r.Scores[i], r.Intervals[i]})
		} else {
			v, _ = json.Marshal(r.Scores[i])
		}
		buf.Write(v)
	}
	if indent {
		buf.WriteByte('\n')
	}
	buf.WriteString("}\n")
	_, err := w.Write(buf.Bytes())
	return err
}
