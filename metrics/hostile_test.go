package metrics

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// n-gram and character orders of 10^9 are refused before anything is
// allocated (they asked for gigabytes of per-order counts).
func TestHugeOrdersRefused(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := NewBLEU(BLEUOptions{MaxNgramOrder: 1_000_000_000}); err == nil || !strings.Contains(err.Error(), "1000000000") {
		t.Errorf("BLEU order 10^9: %v", err)
	}
	for _, o := range []CHRFOptions{{CharOrder: 1_000_000_000}, {WordOrder: 1_000_000_000}, {Beta: 1_000_000_000}} {
		if _, err := NewCHRF(o); err == nil || !strings.Contains(err.Error(), "1000000000") {
			t.Errorf("chrF %+v: %v", o, err)
		}
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("refusing allocated %d bytes", grew)
	}
	if _, err := NewBLEU(BLEUOptions{MaxNgramOrder: 1000}); err != nil {
		t.Errorf("order 1000: %v", err)
	}
}

// Statistics no text could have produced are refused when merged (a file
// claiming more matches than n-grams printed BLEU 72416).
func TestMergeRefusesImpossibleStatistics(t *testing.T) {
	good := `{"format": "ortrain-score-stats/1", "metric": "bleu", "bleu_options": {"tokenize": "13a", "smooth_method": "exp", "lowercase": false, "effective_order": false, "max_ngram_order": 4, "force": false},
	 "bleu": {"segments": 2, "sys_len": 10, "ref_len": 10, "correct": [8, 5, 3, 1], "total": [10, 8, 6, 4], "min_refs": 1, "max_refs": 1, "tokenized_periods": 0}}`
	f, err := ReadStatsFile(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MergeStatsFiles([]StatsFile{f, f}); err != nil {
		t.Fatalf("good statistics: %v", err)
	}
	for name, edit := range map[string][2]string{
		"matches above n-grams": {`"correct": [8, 5, 3, 1]`, `"correct": [800, 500, 300, 100]`},
		"n-grams above tokens":  {`"total": [10, 8, 6, 4]`, `"total": [10, 8, 6000, 4]`},
		"negative":              {`"correct": [8, 5, 3, 1]`, `"correct": [8, -5, 3, 1]`},
		"absurd":                {`"sys_len": 10`, `"sys_len": 9223372036854775807`},
		"refs":                  {`"min_refs": 1`, `"min_refs": 0`},
	} {
		bad, err := ReadStatsFile(strings.NewReader(strings.Replace(good, edit[0], edit[1], 1)))
		if err != nil {
			t.Fatal(err)
		}
		if m, err := MergeStatsFiles([]StatsFile{f, bad}); err == nil {
			sc, _ := m.Scorer()
			score, _ := sc.CorpusScore(BootstrapOptions{})
			t.Errorf("%s: merged, scoring %v", name, score)
		}
	}
	chrf := `{"format": "ortrain-score-stats/1", "metric": "chrf", "chrf_options": {"char_order": 1, "word_order": 0, "beta": 2, "lowercase": false, "whitespace": false, "eps_smoothing": false},
	 "chrf": {"segments": 1, "counts": [5, 5, 9], "min_refs": 1, "max_refs": 1}}`
	cf, err := ReadStatsFile(strings.NewReader(chrf))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MergeStatsFiles([]StatsFile{cf}); err == nil {
		t.Error("chrF: 9 matches of 5 n-grams merged")
	}
	var buf bytes.Buffer
	r, _ := NewROUGE(ROUGEOptions{Types: []string{"rouge1"}}, false)
	r.Add("a b", []string{"a b"})
	WriteStatsFile(&buf, r.StatsFile())
	rouge := strings.Replace(buf.String(), `"count": 1`, `"count": 0`, 1)
	rf, err := ReadStatsFile(strings.NewReader(rouge))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MergeStatsFiles([]StatsFile{rf}); err == nil {
		t.Error("ROUGE: sums of 1 over 0 pairs merged")
	}
}
