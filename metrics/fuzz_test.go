package metrics

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzStatsFile reads arbitrary bytes as a statistics file, merges it with
// itself and scores the result: statistics no text could produce are
// refused, and nothing panics or scores outside [0, 100]. Run by
// scripts/fuzz.sh.
func FuzzStatsFile(f *testing.F) {
	for _, metric := range []string{MetricBLEU, MetricCHRF, MetricROUGE} {
		var s Scorer
		var err error
		switch metric {
		case MetricBLEU:
			s, err = NewBLEU(BLEUOptions{})
		case MetricCHRF:
			s, err = NewCHRF(CHRFOptions{WordOrder: 2})
		default:
			s, err = NewROUGE(ROUGEOptions{}, false)
		}
		if err != nil {
			f.Fatal(err)
		}
		s.KeepSegmentStats()
		if err := s.AddSegments([]string{"the cat sat on the mat", "a dog"}, [][]string{{"the cat is on the mat"}, {"a dog barks"}}, 1); err != nil {
			f.Fatal(err)
		}
		var b bytes.Buffer
		WriteStatsFile(&b, s.StatsFile())
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ReadStatsFile(bytes.NewReader(data))
		if err != nil {
			return
		}
		merged, err := MergeStatsFiles([]StatsFile{file, file})
		if err != nil {
			return
		}
		s, err := merged.Scorer()
		if err != nil {
			return
		}
		score, err := s.CorpusScore(BootstrapOptions{})
		if err != nil {
			return
		}
		if bleu, ok := score.(BLEUScore); ok && (bleu.Score < 0 || bleu.Score > 100) && !strings.Contains(bleu.String(), "NaN") {
			t.Fatalf("BLEU %v from accepted statistics", bleu.Score)
		}
	})
}
