package metrics

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestReadSegments(t *testing.T) {
	cases := []struct {
		name, in string
		jsonl    bool
		want     []string
		absent   []bool
		err      string
	}{
		{"lf", "a b\n\nc  \n", false, []string{"a b", "", "c"}, nil, ""},
		{"crlf", "a b\r\nc\r\n", false, []string{"a b", "c"}, nil, ""},
		{"no final newline", "a\nb", false, []string{"a", "b"}, nil, ""},
		{"python whitespace", "a\x1c\u00a0\nb\u3000", false, []string{"a", "b"}, nil, ""},
		{"empty", "", false, nil, nil, "f.txt: file is empty"},
		{"bad utf8", "ok\nbad\xc3(\n", false, nil, nil, "f.txt:2: invalid UTF-8 at byte 4"},
		{"jsonl", "\"a\\nb\"\n\"\"\nnull\n", true, []string{"a\nb", "", ""}, []bool{false, false, true}, ""},
		{"jsonl verbatim", "\" x \\r\"\n", true, []string{" x \r"}, nil, ""},
		{"jsonl blank", "\"a\"\n\n\"b\"\n", true, nil, nil, "f.txt:2: blank line"},
		{"jsonl not string", "\"a\"\n[1]\n", true, nil, nil, "f.txt:2: not a JSON string"},
	}
	for _, c := range cases {
		s, err := ReadSegments(strings.NewReader(c.in), "f.txt", c.jsonl)
		if c.err != "" {
			var ie *InputError
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.As(err, &ie) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || strings.Join(s.Lines, "|") != strings.Join(c.want, "|") || len(s.Lines) != len(c.want) {
			t.Errorf("%s: %q %v, want %q", c.name, s.Lines, err, c.want)
		}
		if len(s.Absent) != len(c.absent) {
			t.Errorf("%s: absent %v want %v", c.name, s.Absent, c.absent)
		}
	}
}

func TestPairSegments(t *testing.T) {
	hyp := Segments{Name: "h", Lines: []string{"a", "b"}}
	r1 := Segments{Name: "r1", Lines: []string{"a", "b"}, Absent: []bool{false, true}}
	r2 := Segments{Name: "r2", Lines: []string{"x", "y"}}
	got, err := PairSegments(hyp, []Segments{r1, r2})
	if err != nil || len(got[0]) != 2 || len(got[1]) != 1 || got[1][0] != "y" {
		t.Errorf("got %q %v", got, err)
	}
	if _, err := PairSegments(hyp, []Segments{{Name: "r", Lines: []string{"a"}}}); err == nil || !strings.Contains(err.Error(), "r: 1 segments, but the hypotheses (h) have 2") {
		t.Errorf("length mismatch: %v", err)
	}
	if _, err := PairSegments(hyp, []Segments{r1}); err == nil || !strings.Contains(err.Error(), "r1:2:") {
		t.Errorf("segment without reference: %v", err)
	}
}

func TestStatsFileRoundTripAndMergeChecks(t *testing.T) {
	b, _ := NewBLEU(BLEUOptions{})
	_ = b.Add("the cat sat", []string{"the cat sat down"})
	var buf bytes.Buffer
	if err := WriteStatsFile(&buf, b.StatsFile()); err != nil {
		t.Fatal(err)
	}
	f, err := ReadStatsFile(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	m, err := MergeStatsFiles([]StatsFile{f, f})
	if err != nil {
		t.Fatal(err)
	}
	if m.BLEU.Segments != 2 || m.BLEU.SysLen != 6 || m.BLEU.Correct[0] != 6 {
		t.Errorf("merged %+v", m.BLEU)
	}
	lc, _ := NewBLEU(BLEUOptions{Lowercase: true})
	if _, err := MergeStatsFiles([]StatsFile{f, lc.StatsFile()}); err == nil {
		t.Error("shards with different options merged")
	}
	r, _ := NewROUGE(ROUGEOptions{}, true)
	_, _ = r.Add("a b", []string{"a c"})
	noPairs, _ := NewROUGE(ROUGEOptions{}, false)
	_, _ = noPairs.Add("a b", []string{"a c"})
	mr, err := MergeStatsFiles([]StatsFile{r.StatsFile(), noPairs.StatsFile()})
	if err != nil || mr.ROUGE.Count != 2 || len(mr.ROUGE.Pairs) != 0 {
		t.Errorf("ROUGE merge without all pairs: %+v %v", mr.ROUGE, err)
	}
	for _, bad := range []string{`{}`, `{"format":"ortrain-score-stats/1","metric":"bleu"}`, `{"format":"x","metric":"bleu"}`, `not json`, `{"format":"ortrain-score-stats/1","metric":"bleu","extra":1}`} {
		if _, err := ReadStatsFile(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
