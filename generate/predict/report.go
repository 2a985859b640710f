package predict

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/metrics"
)

// Report is the JSON report of a scored run.
type Report struct {
	Model           string                        `json:"model"`
	Decoder         string                        `json:"decoder"`
	Shard           string                        `json:"shard,omitempty"`
	Lines           [2]int                        `json:"lines"` // first (1-based) and last line processed
	Predictions     int                           `json:"predictions"`
	Seconds         float64                       `json:"seconds"`
	SentencesPerSec float64                       `json:"sentences_per_second"`
	NumBeams        int                           `json:"num_beams"`
	MaxNewTokens    int                           `json:"max_new_tokens,omitempty"`
	BLEU            metrics.BLEUScore             `json:"bleu"`
	ROUGE           map[string]metrics.ROUGEScore `json:"rouge"`
	StatsFiles      map[string]string             `json:"stats_files"`

	rougeTypes []string // ROUGE's keys in rouge-score's order, for WriteSummary
}

// WriteSummary writes the BLEU line and one F-measure line per ROUGE type.
func (r *Report) WriteSummary(w io.Writer) {
	fmt.Fprintln(w, r.BLEU.String())
	types := r.rougeTypes
	if types == nil { // a report read back from JSON
		for t := range r.ROUGE {
			types = append(types, t)
		}
		slices.Sort(types)
	}
	for _, t := range types {
		fmt.Fprintf(w, "%s F = %.4f\n", t, r.ROUGE[t].FMeasure)
	}
}

// reportRun describes the run being scored.
type reportRun struct {
	model, decoder  string
	numBeams        int
	maxNewTokens    int
	shard, shards   int
	lo, hi          int // the shard's lines, [lo, hi) 0-based
	elapsed         time.Duration
	decoded         int // lines decoded in this run (not resumed)
	out, reportPath string
}

// scorer accumulates BLEU and ROUGE statistics line by line, so that no
// prediction or reference needs to be held.
type scorer struct {
	bleu  *metrics.BLEU
	rouge *metrics.ROUGE
	n     int
}

func newScorer() (*scorer, error) {
	bleu, err := metrics.NewBLEU(metrics.BLEUOptions{})
	if err != nil {
		return nil, err
	}
	rouge, err := metrics.NewROUGE(metrics.ROUGEOptions{}, false)
	if err != nil {
		return nil, err
	}
	return &scorer{bleu: bleu, rouge: rouge}, nil
}

// add scores one prediction against its references; line is its 1-based
// line number, for messages.
func (s *scorer) add(line int, pred string, refs []string) error {
	if err := s.bleu.Add(pred, refs); err != nil {
		return fault.Inputf("scoring line %d: %w", line, err)
	}
	if _, err := s.rouge.Add(pred, refs); err != nil {
		return fault.Inputf("scoring line %d: %w", line, err)
	}
	s.n++
	return nil
}

// writeReport writes the BLEU and ROUGE statistics files beside run.out,
// then the JSON report.
func (s *scorer) writeReport(run reportRun) (*Report, error) {
	bleu, rouge := s.bleu, s.rouge
	rep := &Report{
		Model: run.model, Decoder: run.decoder, Lines: [2]int{run.lo + 1, run.hi},
		Predictions: s.n, Seconds: run.elapsed.Seconds(), NumBeams: run.numBeams, MaxNewTokens: run.maxNewTokens,
		BLEU: bleu.Score(), ROUGE: map[string]metrics.ROUGEScore{}, StatsFiles: map[string]string{},
		rougeTypes: rouge.Types(),
	}
	if run.shards > 1 {
		rep.Shard = fmt.Sprintf("%d/%d", run.shard, run.shards)
	}
	if sec := run.elapsed.Seconds(); sec > 0 {
		rep.SentencesPerSec = float64(run.decoded) / sec
	}
	for i, t := range rouge.Types() {
		rep.ROUGE[t] = rouge.Mean()[i]
	}
	for metric, sf := range map[string]metrics.StatsFile{metrics.MetricBLEU: bleu.StatsFile(), metrics.MetricROUGE: rouge.StatsFile()} {
		p := run.out + "." + metric + "-stats.json"
		var b bytes.Buffer
		if err := metrics.WriteStatsFile(&b, sf); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return nil, err
		}
		rep.StatsFiles[metric] = p
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(run.reportPath, append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	return rep, nil
}
