package metrics

import "testing"

// Benchmarks on the committed tatoeba/tico/flores subsets, replicated to
// 10,000 pairs. scripts/bench/metrics_bench.sh compares against the peers.

func benchPairs(b *testing.B) ([]string, [][]string) {
	var ref bleuRefFile
	loadRefs(b, "bleu.json", &ref)
	var hyps []string
	var refs [][]string
	for len(hyps) < 10000 {
		for _, name := range []string{"tatoeba_ro_perturbed", "tico19_fr_perturbed", "flores_eng_multiref"} {
			d := ref.Datasets[name]
			hyps = append(hyps, d.Hyps...)
			refs = append(refs, d.Refs...)
		}
	}
	return hyps[:10000], refs[:10000]
}

func BenchmarkBLEU10k(b *testing.B) {
	hyps, refs := benchPairs(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, _ := NewBLEU(BLEUOptions{})
		if err := m.AddBatch(hyps, refs, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCHRF10k(b *testing.B) {
	hyps, refs := benchPairs(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, _ := NewCHRF(CHRFOptions{})
		if err := m.AddBatch(hyps, refs, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkROUGE10k(b *testing.B) {
	hyps, refs := benchPairs(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, _ := NewROUGE(ROUGEOptions{UseStemmer: true}, false)
		if _, err := m.AddBatch(hyps, refs, 1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkROUGEBootstrap20k(b *testing.B) {
	hyps, refs := benchPairs(b)
	r, _ := NewROUGE(ROUGEOptions{}, true)
	for i := 0; i < 2; i++ {
		if _, err := r.AddBatch(hyps, refs, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Bootstrap(200, 0.95, 1); err != nil {
			b.Fatal(err)
		}
	}
}
