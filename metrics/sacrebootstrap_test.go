package metrics

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/ortrain/ortrain/metrics/internal/nprand"
)

type bootRef struct {
	Data       string          `json:"data"`
	Options    json.RawMessage `json:"options"`
	Seed       uint64          `json:"seed"`
	NBootstrap int             `json:"n_bootstrap"`
	Score      float64         `json:"score"`
	Mean       float64         `json:"mean"`
	CI         float64         `json:"ci"`
	Signature  string          `json:"signature"`
}

// sacrebleu's corpus_score(..., n_bootstrap) resamples with NumPy's PCG64 and
// float32 statistics; mean and interval match to 1e-9.
func TestBLEUBootstrapMatchesSacreBLEU(t *testing.T) {
	var ref struct {
		Datasets  map[string]textSet `json:"datasets"`
		Bootstrap []bootRef          `json:"bootstrap"`
		PCG64     []struct {
			Seed  uint64 `json:"seed"`
			K     int    `json:"k"`
			Draws []int  `json:"draws"`
		} `json:"pcg64"`
	}
	loadRefs(t, "bleu.json", &ref)
	for _, c := range ref.PCG64 {
		g := nprand.NewPCG64(c.Seed)
		for i, w := range c.Draws {
			if got := g.Intn(c.K); got != w {
				t.Fatalf("default_rng(%d).choice(%d) draw %d = %d, want %d", c.Seed, c.K, i, got, w)
			}
		}
	}
	for i, c := range ref.Bootstrap {
		var p pyBLEUOptions
		if err := json.Unmarshal(c.Options, &p); err != nil {
			t.Fatal(err)
		}
		d := ref.Datasets[c.Data]
		b, err := NewBLEU(p.options(false))
		if err != nil {
			t.Fatal(err)
		}
		b.KeepSegmentStats()
		if err := b.AddBatch(d.Hyps, d.Refs, 2); err != nil {
			t.Fatal(err)
		}
		ci, err := b.Bootstrap(c.NBootstrap, c.Seed)
		if err != nil {
			t.Fatal(err)
		}
		if !near(b.Score().Score, c.Score) || !near(ci.Mean, c.Mean) || !near(ci.CI, c.CI) || ci.Signature != c.Signature {
			t.Errorf("case %d %s %s seed %d: got %v %+v, want score %v mean %v ci %v %s", i, c.Data, c.Options, c.Seed,
				b.Score().Score, ci, c.Score, c.Mean, c.CI, c.Signature)
		}
	}
	t.Logf("%d BLEU bootstrap cases compared", len(ref.Bootstrap))
}

func TestCHRFBootstrapMatchesSacreBLEU(t *testing.T) {
	var ref struct {
		Datasets  map[string]textSet `json:"datasets"`
		Bootstrap []bootRef          `json:"bootstrap"`
	}
	loadRefs(t, "chrf.json", &ref)
	for i, c := range ref.Bootstrap {
		var o CHRFOptions
		if err := json.Unmarshal(c.Options, &o); err != nil {
			t.Fatal(err)
		}
		d := ref.Datasets[c.Data]
		m, err := NewCHRF(o)
		if err != nil {
			t.Fatal(err)
		}
		m.KeepSegmentStats()
		for k, h := range d.Hyps {
			if err := m.Add(h, d.Refs[k]); err != nil {
				t.Fatal(err)
			}
		}
		ci, err := m.Bootstrap(c.NBootstrap, c.Seed)
		if err != nil {
			t.Fatal(err)
		}
		if !near(m.Score().Score, c.Score) || !near(ci.Mean, c.Mean) || !near(ci.CI, c.CI) || ci.Signature != c.Signature {
			t.Errorf("case %d %s %s seed %d: got %v %+v, want score %v mean %v ci %v %s", i, c.Data, c.Options, c.Seed,
				m.Score().Score, ci, c.Score, c.Mean, c.CI, c.Signature)
		}
	}
	t.Logf("%d chrF bootstrap cases compared", len(ref.Bootstrap))
}

// Per-segment statistics survive sharding, so a merged bootstrap equals the
// single-pass one; shards without them cannot bootstrap.
func TestBootstrapAfterMerge(t *testing.T) {
	var ref bleuRefFile
	loadRefs(t, "bleu.json", &ref)
	d := ref.Datasets["tatoeba_ro_perturbed"]
	whole, _ := NewBLEU(BLEUOptions{})
	whole.KeepSegmentStats()
	_ = whole.AddBatch(d.Hyps, d.Refs, 1)
	var files []StatsFile
	for lo := 0; lo < len(d.Hyps); lo += 60 {
		hi := min(lo+60, len(d.Hyps))
		s, _ := NewBLEU(BLEUOptions{})
		s.KeepSegmentStats()
		_ = s.AddBatch(d.Hyps[lo:hi], d.Refs[lo:hi], 1)
		files = append(files, s.StatsFile())
	}
	m, err := MergeStatsFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := m.BLEUAccumulator()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := whole.Bootstrap(300, 3)
	b, err := acc.Bootstrap(300, 3)
	if err != nil || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("merged bootstrap %+v (%v) != single pass %+v", b, err, a)
	}
	plain, _ := NewBLEU(BLEUOptions{})
	_ = plain.Add(d.Hyps[0], d.Refs[0])
	if _, err := plain.Bootstrap(10, 1); err == nil {
		t.Error("bootstrap without kept segment statistics")
	}
	m2, _ := MergeStatsFiles([]StatsFile{files[0], plain.StatsFile()})
	if len(m2.BLEU.PerSegment) != 0 {
		t.Error("partial per-segment statistics kept after merge")
	}
}
