package tokenize

import (
	"encoding/json"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// benchCorpus is the corpus of scripts/bench/tokenize_bench.py: Tatoeba
// train (en), FLORES-200 devtest (eng) and SciTLDR train source sentences,
// from ../shared/data when present, else their committed samples (so the
// rates are not comparable with tokenize_bench.py's).
func benchCorpus(b *testing.B) []string {
	shared, _ := testenv.CorpusRoot(b)
	texts := readLines(b, filepath.Join(shared, "translation", "tatoeba-en-ro", "train.en"))
	texts = append(texts, readLines(b, filepath.Join(shared, "translation", "flores200-devtest", "eng_Latn.devtest"))...)
	for _, line := range readLines(b, filepath.Join(shared, "summarization", "scitldr-a", "train.jsonl")) {
		var r struct{ Source []string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			b.Fatal(err)
		}
		texts = append(texts, r.Source...)
	}
	return texts
}

// BenchmarkEncodeCorpus reports sentences/s for each model tokenizer, with
// one worker and with GOMAXPROCS workers. Run with -benchtime=3x.
func BenchmarkEncodeCorpus(b *testing.B) {
	texts := benchCorpus(b)
	for _, pt := range parityTokenizers {
		if pt.file {
			continue
		}
		tok := loadParity(b, pt.dir, pt.target, false)
		for _, workers := range []int{1, 0} {
			name := pt.ref + "/workers=" + map[int]string{1: "1", 0: "all"}[workers]
			b.Run(name, func(b *testing.B) {
				cpu0 := cpuSeconds()
				for b.Loop() {
					_, errs := tok.EncodeBatch(b.Context(), texts, workers)
					for _, err := range errs {
						if err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(len(texts)*b.N)/b.Elapsed().Seconds(), "sentences/s")
				// CPU time is robust to other load on a shared machine.
				b.ReportMetric(float64(len(texts)*b.N)/(cpuSeconds()-cpu0), "sentences/cpu-s")
			})
		}
	}
}

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
