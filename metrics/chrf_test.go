package metrics

import (
	"encoding/json"
	"fmt"
	"testing"
)

type chrfRefFile struct {
	Datasets map[string]textSet `json:"datasets"`
	Corpus   []struct {
		Data    string      `json:"data"`
		Options CHRFOptions `json:"options"`
		Corpus  CHRFScore   `json:"corpus"`
	} `json:"corpus"`
	Sentence []struct {
		Data    string      `json:"data"`
		Options CHRFOptions `json:"options"`
		Scores  []float64   `json:"scores"`
	} `json:"sentence"`
}

func TestCHRFMatchesSacreBLEU(t *testing.T) {
	var ref chrfRefFile
	loadRefs(t, "chrf.json", &ref)
	perVariant := map[string]int{}
	for i, c := range ref.Corpus {
		d := ref.Datasets[c.Data]
		m, err := NewCHRF(c.Options)
		if err != nil {
			t.Fatal(err)
		}
		for k, h := range d.Hyps {
			if err := m.Add(h, d.Refs[k]); err != nil {
				t.Fatal(err)
			}
		}
		got := m.Score()
		if !near(got.Score, c.Corpus.Score) || got.Signature != c.Corpus.Signature || got.Name != c.Corpus.Name {
			t.Errorf("case %d %s %+v:\n got %+v\nwant %+v", i, c.Data, c.Options, got, c.Corpus)
		}
		perVariant[got.Name]++
	}
	n := 0
	for _, c := range ref.Sentence {
		d := ref.Datasets[c.Data]
		m, _ := NewCHRF(c.Options)
		for k, want := range c.Scores {
			got, err := m.SentenceScore(d.Hyps[k], d.Refs[k])
			if err != nil {
				t.Fatal(err)
			}
			if !near(got.Score, want) {
				t.Errorf("sentence %s %+v #%d %q: got %v want %v", c.Data, c.Options, k, d.Hyps[k], got.Score, want)
			}
			n++
		}
	}
	t.Logf("%d corpus chrF cases (%v), %d sentence scores compared", len(ref.Corpus), perVariant, n)
}

func TestCHRFShardsMergeExactly(t *testing.T) {
	var ref chrfRefFile
	loadRefs(t, "chrf.json", &ref)
	d := ref.Datasets["tico19_fr_perturbed"]
	for _, opts := range []CHRFOptions{{}, {WordOrder: 2}, {EpsSmoothing: true, Whitespace: true}} {
		whole, _ := NewCHRF(opts)
		for k, h := range d.Hyps {
			_ = whole.Add(h, d.Refs[k])
		}
		merged, _ := NewCHRF(opts)
		for lo := 0; lo < len(d.Hyps); lo += 41 {
			hi := min(lo+41, len(d.Hyps))
			shard, _ := NewCHRF(opts)
			if err := shard.AddBatch(d.Hyps[lo:hi], d.Refs[lo:hi], 2); err != nil {
				t.Fatal(err)
			}
			js, _ := json.Marshal(shard.Stats())
			var back CHRFStats
			if err := json.Unmarshal(js, &back); err != nil {
				t.Fatal(err)
			}
			if err := merged.Merge(back); err != nil {
				t.Fatal(err)
			}
		}
		if a, b := whole.Score(), merged.Score(); fmt.Sprint(a) != fmt.Sprint(b) || a.Score != b.Score {
			t.Errorf("%+v: merged %v != single pass %v", opts, b, a)
		}
	}
}

// The packed fast path and the general map path agree segment by segment
// (the map path also serves alphabets too large to pack).
func TestCHRFPackedPathEqualsMapPath(t *testing.T) {
	var ref chrfRefFile
	loadRefs(t, "chrf.json", &ref)
	big := make([]rune, 0, 1200)
	for r := rune(0x4e00); len(big) < 1200; r++ {
		big = append(big, r)
	}
	extra := textSet{Hyps: []string{string(big)}, Refs: [][]string{{string(big[100:900])}}}
	n := 0
	for _, opts := range []CHRFOptions{{}, {WordOrder: 2}, {WordOrder: 3, CharOrder: 3}, {Whitespace: true, WordOrder: 1}} {
		o, _ := opts.normalized()
		seg := newCHRFSegmenter(o)
		for name, d := range ref.Datasets {
			for k, h := range d.Hyps {
				p, ok := seg.segmentPacked(h, d.Refs[k])
				m := seg.segmentMaps(h, d.Refs[k])
				if !ok || fmt.Sprint(p) != fmt.Sprint(m) {
					t.Fatalf("%s #%d %+v: packed %v (ok=%v), maps %v", name, k, o, p, ok, m)
				}
				n++
			}
		}
		if _, ok := seg.segmentPacked(extra.Hyps[0], extra.Refs[0]); ok {
			t.Error("1200 distinct characters packed into 10-bit ids")
		}
		got, err := seg.segment(extra.Hyps[0], extra.Refs[0])
		if err != nil || fmt.Sprint(got) != fmt.Sprint(seg.segmentMaps(extra.Hyps[0], extra.Refs[0])) {
			t.Errorf("fallback: %v %v", got, err)
		}
	}
	t.Logf("%d segments compared", n)
}
