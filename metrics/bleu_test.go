package metrics

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

type bleuRefFile struct {
	Datasets map[string]textSet `json:"datasets"`
	Corpus   []struct {
		Data    string          `json:"data"`
		Options json.RawMessage `json:"options"`
		Corpus  BLEUScore       `json:"corpus"`
	} `json:"corpus"`
	Sentence []struct {
		Data      string          `json:"data"`
		Count     int             `json:"count"`
		Options   json.RawMessage `json:"options"`
		Signature string          `json:"signature"`
		Sentences []BLEUScore     `json:"sentences"`
	} `json:"sentence"`
}

// pyBLEUOptions are the keyword arguments the reference script passed.
type pyBLEUOptions struct {
	Tokenize          string   `json:"tokenize"`
	SmoothMethod      string   `json:"smooth_method"`
	SmoothValue       *float64 `json:"smooth_value"`
	Lowercase         bool     `json:"lowercase"`
	EffectiveOrder    bool     `json:"effective_order"`
	UseEffectiveOrder *bool    `json:"use_effective_order"`
	MaxNgramOrder     int      `json:"max_ngram_order"`
}

func (p pyBLEUOptions) options(sentence bool) BLEUOptions {
	o := BLEUOptions{Tokenize: p.Tokenize, SmoothMethod: p.SmoothMethod, SmoothValue: p.SmoothValue,
		Lowercase: p.Lowercase, EffectiveOrder: p.EffectiveOrder, MaxNgramOrder: p.MaxNgramOrder}
	if sentence {
		o.EffectiveOrder = p.UseEffectiveOrder == nil || *p.UseEffectiveOrder
	}
	return o
}

func checkBLEU(t *testing.T, what string, got, want BLEUScore, withSig bool) {
	t.Helper()
	ok := near(got.Score, want.Score) && near(got.BP, want.BP) && got.SysLen == want.SysLen && got.RefLen == want.RefLen &&
		nearSlice(got.Counts, want.Counts) && nearSlice(got.Totals, want.Totals) && nearSlice(got.Precisions, want.Precisions)
	if withSig && got.Signature != want.Signature {
		ok = false
	}
	if !ok {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func TestBLEUCorpusMatchesSacreBLEU(t *testing.T) {
	var ref bleuRefFile
	loadRefs(t, "bleu.json", &ref)
	perTok := map[string]int{}
	for i, c := range ref.Corpus {
		var p pyBLEUOptions
		if err := json.Unmarshal(c.Options, &p); err != nil {
			t.Fatal(err)
		}
		d := ref.Datasets[c.Data]
		b, err := NewBLEU(p.options(false))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		for k, h := range d.Hyps {
			if err := b.Add(h, d.Refs[k]); err != nil {
				t.Fatalf("case %d segment %d: %v", i, k, err)
			}
		}
		checkBLEU(t, fmt.Sprintf("case %d %s %s", i, c.Data, c.Options), b.Score(), c.Corpus, true)
		perTok[b.Options().Tokenize]++
	}
	t.Logf("%d corpus BLEU cases compared (per tokenizer %v)", len(ref.Corpus), perTok)
}

func TestBLEUSentenceMatchesSacreBLEU(t *testing.T) {
	var ref bleuRefFile
	loadRefs(t, "bleu.json", &ref)
	n := 0
	for i, c := range ref.Sentence {
		var p pyBLEUOptions
		if err := json.Unmarshal(c.Options, &p); err != nil {
			t.Fatal(err)
		}
		b, err := NewBLEU(p.options(true))
		if err != nil {
			t.Fatal(err)
		}
		d := ref.Datasets[c.Data]
		for k, want := range c.Sentences {
			got, err := b.SentenceScore(d.Hyps[k], d.Refs[k])
			if err != nil {
				t.Fatal(err)
			}
			checkBLEU(t, fmt.Sprintf("sentence case %d (%s %s) segment %d %q", i, c.Data, c.Options, k, d.Hyps[k]), got, want, false)
			n++
		}
		got, _ := b.SentenceScore(d.Hyps[0], d.Refs[0])
		if got.Signature != c.Signature {
			t.Errorf("sentence case %d signature %q, want %q", i, got.Signature, c.Signature)
		}
	}
	t.Logf("%d sentence BLEU scores compared in %d option sets", n, len(ref.Sentence))
}

// Sharded statistics, merged (also through JSON), give exactly the
// single-pass corpus score; AddBatch over goroutines too.
func TestBLEUShardsMergeExactly(t *testing.T) {
	var ref bleuRefFile
	loadRefs(t, "bleu.json", &ref)
	for _, name := range []string{"tatoeba_ro_perturbed", "flores_eng_multiref", "adversarial_3refs"} {
		d := ref.Datasets[name]
		for _, opts := range []BLEUOptions{{}, {Tokenize: TokenizeIntl, MaxNgramOrder: 6, SmoothMethod: SmoothFloor}} {
			whole, _ := NewBLEU(opts)
			for k, h := range d.Hyps {
				if err := whole.Add(h, d.Refs[k]); err != nil {
					t.Fatal(err)
				}
			}
			merged, _ := NewBLEU(opts)
			for lo := 0; lo < len(d.Hyps); lo += 37 {
				hi := min(lo+37, len(d.Hyps))
				shard, _ := NewBLEU(opts)
				if err := shard.AddBatch(d.Hyps[lo:hi], d.Refs[lo:hi], 3); err != nil {
					t.Fatal(err)
				}
				js, err := json.Marshal(shard.Stats())
				if err != nil {
					t.Fatal(err)
				}
				var back BLEUStats
				if err := json.Unmarshal(js, &back); err != nil {
					t.Fatal(err)
				}
				if err := merged.Merge(back); err != nil {
					t.Fatal(err)
				}
			}
			a, b := whole.Score(), merged.Score()
			if fmt.Sprintf("%#v", a) != fmt.Sprintf("%#v", b) {
				t.Errorf("%s: merged %+v != single pass %+v", name, b, a)
			}
			par, _ := NewBLEU(opts)
			big := make([]string, 0, 3000)
			bigRefs := make([][]string, 0, 3000)
			for len(big) < 3000 {
				big = append(big, d.Hyps...)
				bigRefs = append(bigRefs, d.Refs...)
			}
			seq, _ := NewBLEU(opts)
			for k := range big {
				_ = seq.Add(big[k], bigRefs[k])
			}
			if err := par.AddBatch(big, bigRefs, 4); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%#v", seq.Score()) != fmt.Sprintf("%#v", par.Score()) {
				t.Errorf("%s: parallel AddBatch differs from sequential Add", name)
			}
		}
	}
}

func TestBLEUBadInput(t *testing.T) {
	if _, err := NewBLEU(BLEUOptions{Tokenize: "ja-mecab"}); err == nil {
		t.Error("unknown tokenizer accepted")
	}
	if _, err := NewBLEU(BLEUOptions{SmoothMethod: "laplace"}); err == nil {
		t.Error("unknown smoothing accepted")
	}
	b, _ := NewBLEU(BLEUOptions{})
	if err := b.Add("hyp", nil); err == nil {
		t.Error("segment without reference accepted")
	}
	if err := b.Merge(BLEUStats{Correct: []int64{1}, Total: []int64{1}}); err == nil {
		t.Error("statistics of another order merged")
	}
	// No segments: sacrebleu gives BLEU 0 with bp 1 for all-zero statistics.
	if s := b.Score(); s.Score != 0 || s.BP != 1 {
		t.Errorf("empty corpus: %+v", s)
	}
}

// The packed path (sorted uint64 n-grams) and the map path agree segment by
// segment; a segment with more than 65535 distinct tokens falls back.
func TestBLEUPackedPathEqualsMapPath(t *testing.T) {
	var ref bleuRefFile
	loadRefs(t, "bleu.json", &ref)
	n := 0
	for _, opts := range []BLEUOptions{{}, {Tokenize: TokenizeChar, MaxNgramOrder: 3}, {Tokenize: TokenizeIntl, Lowercase: true, MaxNgramOrder: 1}} {
		o, _ := opts.normalized()
		seg := newBLEUSegmenter(o)
		for name, d := range ref.Datasets {
			for k, h := range d.Hyps {
				p := newBLEUStats(o.MaxNgramOrder)
				ok := seg.segmentPacked(h, d.Refs[k], &p)
				m := seg.segmentMaps(h, d.Refs[k])
				if !ok || fmt.Sprint(p) != fmt.Sprint(m) {
					t.Fatalf("%s #%d %+v: packed %+v (ok=%v), maps %+v", name, k, o, p, ok, m)
				}
				n++
			}
		}
	}
	words := make([]string, 70000)
	for i := range words {
		words[i] = fmt.Sprintf("w%d", i)
	}
	long := strings.Join(words, " ")
	short := strings.Join(words[:1000], " ")
	b, _ := NewBLEU(BLEUOptions{})
	p := newBLEUStats(4)
	if b.seg.segmentPacked(long, []string{short}, &p) {
		t.Error("70000 distinct tokens packed into 16-bit ids")
	}
	got, err := b.SentenceScore(long, []string{short})
	want := b.opts.score(b.seg.segmentMaps(long, []string{short}))
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) || got.Counts[0] != 1000 {
		t.Errorf("fallback: %+v %v, want %+v", got, err, want)
	}
	t.Logf("%d segments compared", n)
}
