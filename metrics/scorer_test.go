package metrics

import (
	"fmt"
	"strings"
	"testing"
)

// scorerCorpus is a corpus long enough for SegmentScores and AddSegments to
// run on several goroutines (minPerWorker segments each).
func scorerCorpus(t *testing.T) ([]string, [][]string) {
	var ref rougeRefFile
	loadRefs(t, "rouge.json", &ref)
	d := ref.Datasets["scitldr_lead3_multiref"]
	var hyps []string
	var refs [][]string
	for len(hyps) < 3*minPerWorker {
		hyps = append(hyps, d.Preds...)
		refs = append(refs, d.Targets...)
	}
	return hyps, refs
}

func newScorers(t *testing.T) []Scorer {
	b, err := NewBLEU(BLEUOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCHRF(CHRFOptions{WordOrder: 2})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewROUGE(ROUGEOptions{UseStemmer: true}, false)
	if err != nil {
		t.Fatal(err)
	}
	return []Scorer{b, c, r}
}

// Through the interface, every metric scores segments on their own as its
// own per-segment method does, in order, on any number of goroutines.
func TestScorerSegmentScores(t *testing.T) {
	hyps, refs := scorerCorpus(t)
	for _, s := range newScorers(t) {
		par, err := s.SegmentScores(hyps, refs, 3)
		if err != nil || len(par) != len(hyps) {
			t.Fatalf("%s: %d scores, %v", s.Metric(), len(par), err)
		}
		for i, got := range par {
			var want any
			switch m := s.(type) {
			case *BLEU:
				want, _ = m.SentenceScore(hyps[i], refs[i])
			case *CHRF:
				want, _ = m.SentenceScore(hyps[i], refs[i])
			case *ROUGE:
				p, _ := m.ScorePair(hyps[i], refs[i])
				want = ROUGEResult{Types: m.Types(), Scores: p}
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
				t.Fatalf("%s segment %d: %#v, want %#v", s.Metric(), i+1, got, want)
			}
		}
		if _, err := s.SegmentScores(hyps, refs[1:], 1); err == nil {
			t.Errorf("%s: misaligned segments scored", s.Metric())
		}
	}
}

// Shards added through the interface, written to statistics files and
// merged, score as one pass does, bootstrap estimate included.
func TestScorerShardsMergeToOnePass(t *testing.T) {
	hyps, refs := scorerCorpus(t)
	boot := BootstrapOptions{Samples: 20, Seed: 5, Confidence: 0.9}
	whole := newScorers(t)
	for i, s := range whole {
		s.KeepSegmentStats()
		if err := s.AddSegments(hyps, refs, 2); err != nil {
			t.Fatal(err)
		}
		want, err := s.CorpusScore(boot)
		if err != nil {
			t.Fatal(err)
		}
		var files []StatsFile
		for lo := 0; lo < len(hyps); lo += 700 {
			shard := newScorers(t)[i]
			shard.KeepSegmentStats()
			hi := min(lo+700, len(hyps))
			if err := shard.AddSegments(hyps[lo:hi], refs[lo:hi], 0); err != nil {
				t.Fatal(err)
			}
			files = append(files, shard.StatsFile())
		}
		merged, err := MergeStatsFiles(files)
		if err != nil {
			t.Fatal(err)
		}
		m, err := merged.Scorer()
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.CorpusScore(boot)
		if err != nil || got.String() != want.String() {
			t.Errorf("%s: merged %v (%v), one pass %v", s.Metric(), got, err, want)
		}
		if plain, _ := s.CorpusScore(BootstrapOptions{}); strings.Contains(plain.String(), "μ") || strings.Contains(plain.String(), " low ") {
			t.Errorf("%s: no bootstrap asked, got %s", s.Metric(), plain)
		}
	}
}

// A statistics file merges only into a scorer of its metric and options.
func TestScorerMergeStatsFileRefusesOthers(t *testing.T) {
	scorers := newScorers(t)
	for i, s := range scorers {
		other := scorers[(i+1)%len(scorers)].StatsFile()
		if err := s.MergeStatsFile(other); err == nil || !strings.Contains(err.Error(), "do not merge into "+s.Metric()) {
			t.Errorf("%s took %s statistics: %v", s.Metric(), other.Metric, err)
		}
	}
	lc, _ := NewBLEU(BLEUOptions{Lowercase: true})
	if err := scorers[0].MergeStatsFile(lc.StatsFile()); err == nil || !strings.Contains(err.Error(), `"lowercase":true`) {
		t.Errorf("BLEU took lowercased statistics: %v", err)
	}
	if err := scorers[2].MergeStatsFile(StatsFile{Metric: MetricROUGE}); err == nil {
		t.Error("ROUGE took a file without statistics")
	}
	if _, err := (StatsFile{Metric: "meteor"}).Scorer(); err == nil {
		t.Error("a scorer for an unknown metric")
	}
}

// The text forms: sacrebleu's with a bootstrap estimate, and ROUGE's line
// per pair or table per corpus.
func TestScoreStrings(t *testing.T) {
	ci := &BootstrapCI{Mean: 31.234, CI: 1.5}
	b := BLEUScore{Score: 31.5, Precisions: []float64{60, 40}, BP: 1, SysLen: 9, RefLen: 10, Signature: "nrefs:1|bs:10|seed:1", BootstrapCI: ci}
	if got, want := b.String(), "BLEU|nrefs:1|bs:10|seed:1 = 31.50 (μ = 31.23 ± 1.50) 60.0/40.0 (BP = 1.000 ratio = 0.900 hyp_len = 9 ref_len = 10)"; got != want {
		t.Errorf("BLEU:\n%s\nwant\n%s", got, want)
	}
	c := CHRFScore{Score: 50.126, Name: "chrF2", Signature: "nrefs:1|bs:10", BootstrapCI: ci}
	if got, want := c.String(), "chrF2|nrefs:1|bs:10 = 50.13 (μ = 31.23 ± 1.50)"; got != want {
		t.Errorf("chrF: %s, want %s", got, want)
	}
	s := []ROUGEScore{{0.5, 0.25, 1. / 3}, {1, 1, 1}}
	pair := ROUGEResult{Types: []string{"rouge1", "rougeL"}, Scores: s}
	if got, want := pair.String(), "rouge1 P=0.500000 R=0.250000 F=0.333333  rougeL P=1.000000 R=1.000000 F=1.000000"; got != want {
		t.Errorf("pair:\n%s\nwant\n%s", got, want)
	}
	corpus := ROUGEResult{Types: pair.Types, Scores: s, Corpus: true, Pairs: 7,
		Intervals: []ROUGEInterval{{Low: s[0], Mid: s[0], High: s[1]}, {Low: s[1], Mid: s[1], High: s[1]}}}
	want := "ROUGE (rouge-score " + RougeScoreVersion + "), mean of 7 pairs\n" +
		"rouge1     P 0.500000  R 0.250000  F 0.333333   F low 0.333333 mid 0.333333 high 1.000000\n" +
		"rougeL     P 1.000000  R 1.000000  F 1.000000   F low 1.000000 mid 1.000000 high 1.000000"
	if got := corpus.String(); got != want {
		t.Errorf("corpus:\n%s\nwant\n%s", got, want)
	}
}
