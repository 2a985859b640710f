package data

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/tokenize"
)

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func t5(t *testing.T) *tokenize.Pair {
	t.Helper()
	p, err := tokenize.Load(testenv.RealData(t, "tokenizers", "flan-t5-small"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadFormats(t *testing.T) {
	cases := []struct {
		name, file, content string
		format              Format
		want                []Example
	}{
		{"translation", "a.jsonl", `{"translation": {"en": "Hello", "ro": "Salut"}}` + "\n\n" + `{"translation": {"ro": "Da", "en": "Yes"}}` + "\n",
			Format{SourceLang: "en", TargetLang: "ro"},
			[]Example{{0, "Hello", []string{"Salut"}, 1}, {1, "Yes", []string{"Da"}, 3}}},
		{"flat with references", "b.jsonl", `{"doc": ["One.", "Two."], "summ": ["r1", "r2"]}` + "\n",
			Format{SourceField: "doc", TargetField: "summ"},
			[]Example{{0, "One. Two.", []string{"r1", "r2"}, 1}}},
		{"csv", "c.csv", "id,source,target\n1,\"Hi, there\",\"Bună, acolo\"\n2,\"multi\nline\",x\n", Format{},
			[]Example{{0, "Hi, there", []string{"Bună, acolo"}, 2}, {1, "multi\nline", []string{"x"}, 3}}},
		{"tsv", "d.tsv", "en\tro\r\nA \"quoted\" word\tB\r\n", Format{SourceField: "en", TargetField: "ro"},
			[]Example{{0, "A \"quoted\" word", []string{"B"}, 2}}},
		{"prediction set", "e.jsonl", `{"source": "x"}` + "\n", Format{AllowEmptyTarget: true},
			[]Example{{0, "x", nil, 1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, skipped, err := ReadAll(write(t, c.file, c.content), c.format, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(skipped) != 0 {
				t.Errorf("skipped %v", skipped)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %d examples, want %d: %+v", len(got), len(c.want), got)
			}
			for i := range got {
				g, w := got[i], c.want[i]
				if g.Index != w.Index || g.Source != w.Source || !slices.Equal(g.Targets, w.Targets) || g.Line != w.Line {
					t.Errorf("example %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

// TestBadRecords: every kind of bad record fails with file, line and field;
// with SkipBad they are skipped and reported.
func TestBadRecords(t *testing.T) {
	content := strings.Join([]string{
		`{"source": "good", "target": "bun"}`,
		`{"source": "broken", "target": `,
		`{"source": "no target"}`,
		`{"source": "empty", "target": "  "}`,
		"{\"source\": \"bad \xff utf8\", \"target\": \"x\"}",
		`{"source": 3, "target": "x"}`,
		`{"source": "good again", "target": "da"}`,
	}, "\n") + "\n"
	path := write(t, "bad.jsonl", content)
	wantErrs := []struct {
		line  int
		field string
		msg   string
	}{
		{2, "", "malformed JSON"},
		{3, "target", "missing"},
		{4, "target", "empty target"},
		{5, "", "not valid UTF-8"},
		{6, "source", "string or a list"},
	}
	_, _, err := ReadAll(path, Format{}, false)
	var re *RecordError
	if !errors.As(err, &re) || re.Line != 2 || re.File != path {
		t.Fatalf("err = %v, want a RecordError at %s:2", err, path)
	}
	if !strings.Contains(err.Error(), path+":2: malformed JSON") {
		t.Errorf("message %q does not name file and line", err)
	}
	got, skipped, err := ReadAll(path, Format{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].Source != "good again" || got[1].Index != 1 || got[1].Line != 7 {
		t.Errorf("good records = %+v", got)
	}
	if len(skipped) != len(wantErrs) {
		t.Fatalf("skipped %d, want %d: %v", len(skipped), len(wantErrs), skipped)
	}
	for i, w := range wantErrs {
		s := skipped[i]
		if s.Line != w.line || s.Field != w.field || !strings.Contains(s.Msg, w.msg) {
			t.Errorf("skipped[%d] = %v, want line %d field %q containing %q", i, s, w.line, w.field, w.msg)
		}
	}
	rep := SkippedReport(skipped)
	if !strings.HasPrefix(rep, "skipped 5 bad record(s):") || !strings.Contains(rep, path+":4") {
		t.Errorf("report %q", rep)
	}
	// CSV: a missing column is named in the error.
	_, _, err = ReadAll(write(t, "x.csv", "src,tgt\na,b\n"), Format{}, false)
	if err == nil || !strings.Contains(err.Error(), `"source"`) {
		t.Errorf("missing column: %v", err)
	}
	// A file without a single good record is an error for Load.
	if _, err := Load(t.Context(), write(t, "empty.jsonl", "\n\n"), Format{}, t5(t), Options{}); err == nil || !strings.Contains(err.Error(), "no examples") {
		t.Errorf("empty file: %v", err)
	}
	// Unknown extension.
	if _, _, err := ReadAll(write(t, "x.txt", "a\n"), Format{}, false); err == nil || !strings.Contains(err.Error(), ".jsonl") {
		t.Errorf("unknown format: %v", err)
	}
}

// TestCollateMatchesHF compares with DataCollatorForSeq2Seq + shift_tokens_right
// (testdata/tokenizers/cases.json "collate", from scripts/refs/tokenizer_refs.py).
func TestCollateMatchesHF(t *testing.T) {
	data, err := os.ReadFile(testenv.Testdata(t, "tokenizers", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cf struct {
		Collate map[string]struct {
			Prefix          string    `json:"prefix"`
			MaxSource       int       `json:"max_source_length"`
			MaxTarget       int       `json:"max_target_length"`
			Start           int       `json:"decoder_start_token_id"`
			Sources         []string  `json:"sources"`
			Targets         []string  `json:"targets"`
			InputIDs        [][]int64 `json:"input_ids"`
			AttentionMask   [][]int64 `json:"attention_mask"`
			Labels          [][]int64 `json:"labels"`
			DecoderInputIDs [][]int64 `json:"decoder_input_ids"`
		} `json:"collate"`
	}
	if err := json.Unmarshal(data, &cf); err != nil {
		t.Fatal(err)
	}
	if len(cf.Collate) == 0 {
		t.Fatal("no collate references")
	}
	for name, c := range cf.Collate {
		t.Run(name, func(t *testing.T) {
			tok, err := tokenize.Load(testenv.RealData(t, "tokenizers", name))
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i := range c.Sources {
				rec, _ := json.Marshal(map[string]string{"source": c.Sources[i], "target": c.Targets[i]})
				b.Write(rec)
				b.WriteByte('\n')
			}
			d, err := Load(t.Context(), write(t, "x.jsonl", b.String()), Format{}, tok,
				Options{SourcePrefix: c.Prefix, MaxSourceLength: c.MaxSource, MaxTargetLength: c.MaxTarget})
			if err != nil {
				t.Fatal(err)
			}
			col, err := CollatorFor(tok, c.Start)
			if err != nil {
				t.Fatal(err)
			}
			r := d.Epoch(Order{BatchSize: len(c.Sources)}, col, 0, 0)
			if !r.Next(t.Context()) {
				t.Fatal(r.Err())
			}
			bt := r.Batch()
			check := func(what string, got []int64, cols int, want [][]int64) {
				if len(want) != bt.Rows || cols != len(want[0]) {
					t.Fatalf("%s: shape %dx%d, want %dx%d", what, bt.Rows, cols, len(want), len(want[0]))
				}
				for i, row := range want {
					if !slices.Equal(got[i*cols:(i+1)*cols], row) {
						t.Errorf("%s row %d = %v, want %v", what, i, got[i*cols:(i+1)*cols], row)
					}
				}
			}
			check("input_ids", bt.InputIDs, bt.SourceLen, c.InputIDs)
			check("attention_mask", bt.AttentionMask, bt.SourceLen, c.AttentionMask)
			check("labels", bt.Labels, bt.TargetLen, c.Labels)
			check("decoder_input_ids", bt.DecoderInputIDs, bt.TargetLen, c.DecoderInputIDs)
			n := 0
			for _, row := range c.Labels {
				for _, v := range row {
					if v != -100 {
						n++
					}
				}
			}
			if bt.NumLabelTokens() != n {
				t.Errorf("LabelTokens = %d, want %d", bt.NumLabelTokens(), n)
			}
			if r.Next(t.Context()) {
				t.Error("more than one batch")
			}
		})
	}
}

func tatoeba(t *testing.T, n int) string {
	t.Helper()
	dir := testenv.RealData(t, "translation", "tatoeba-en-ro")
	en, _ := os.ReadFile(filepath.Join(dir, "dev.en"))
	ro, _ := os.ReadFile(filepath.Join(dir, "dev.ro"))
	el, rl := strings.Split(string(en), "\n"), strings.Split(string(ro), "\n")
	var b strings.Builder
	for i := 0; i < n; i++ {
		rec, _ := json.Marshal(map[string]any{"translation": map[string]string{"en": el[i], "ro": rl[i]}})
		b.Write(rec)
		b.WriteByte('\n')
	}
	return write(t, "dev.jsonl", b.String())
}

func batches(t *testing.T, r interface {
	Next(context.Context) bool
	Batch() *Batch
	Err() error
}) [][]int {
	t.Helper()
	var out [][]int
	for r.Next(t.Context()) {
		out = append(out, slices.Clone(r.Batch().Indices))
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEpochOrderAndResume: the order is a function of (seed, epoch); skipping
// k batches yields exactly the rest of the epoch.
func TestEpochOrderAndResume(t *testing.T) {
	tok := t5(t)
	d, err := Load(t.Context(), tatoeba(t, 103), Format{SourceLang: "en", TargetLang: "ro"}, tok, Options{})
	if err != nil {
		t.Fatal(err)
	}
	col := Collator{PadID: 0}
	for _, o := range []Order{{BatchSize: 8, Shuffle: true, Seed: 42}, {BatchSize: 8, GroupByLength: true, Seed: 42}, {BatchSize: 8, Shuffle: true, Seed: 7, DropLast: true}} {
		full := batches(t, d.Epoch(o, col, 3, 0))
		if want := o.NumBatches(103); len(full) != want {
			t.Fatalf("%+v: %d batches, want %d", o, len(full), want)
		}
		again := batches(t, d.Epoch(o, col, 3, 0))
		if !slices.EqualFunc(full, again, slices.Equal) {
			t.Errorf("%+v: same (seed, epoch) gave different orders", o)
		}
		resumed := batches(t, d.Epoch(o, col, 3, 5))
		if !slices.EqualFunc(full[5:], resumed, slices.Equal) {
			t.Errorf("%+v: resumed epoch differs from the rest of the full epoch", o)
		}
		other := batches(t, d.Epoch(o, col, 4, 0))
		if slices.EqualFunc(full, other, slices.Equal) {
			t.Errorf("%+v: epochs 3 and 4 have the same order", o)
		}
		seen := map[int]bool{}
		for _, b := range full {
			for _, i := range b {
				if seen[i] {
					t.Fatalf("index %d twice", i)
				}
				seen[i] = true
			}
		}
		if !o.DropLast && len(seen) != 103 {
			t.Errorf("epoch covers %d of 103 examples", len(seen))
		}
	}
	// Evaluation order is file order.
	ev := batches(t, d.Epoch(Order{BatchSize: 50}, col, 0, 0))
	if len(ev) != 3 || ev[0][0] != 0 || ev[2][2] != 102 {
		t.Errorf("eval order %v", ev)
	}
}

// TestGroupByLength checks LengthGroupedSampler's properties: megabatches
// sorted by decreasing length, the longest example first.
func TestGroupByLength(t *testing.T) {
	lengths := make([]int, 1000)
	for i := range lengths {
		lengths[i] = (i * 7919) % 97
	}
	o := Order{BatchSize: 5, GroupByLength: true, Seed: 1}
	perm := o.Permutation(len(lengths), 0, func(i int) int { return lengths[i] })
	if lengths[perm[0]] != 96 {
		t.Errorf("first example has length %d, want the maximum 96", lengths[perm[0]])
	}
	mega := min(1000/(5*4), 50) * 5
	for start := 0; start < len(perm); start += mega {
		m := perm[start:min(start+mega, len(perm))]
		for k := 2; k < len(m); k++ { // m[0] may be the swapped-in maximum
			if lengths[m[k]] > lengths[m[k-1]] {
				t.Fatalf("megabatch at %d not sorted at %d", start, k)
			}
		}
	}
	sorted := slices.Clone(perm)
	slices.Sort(sorted)
	for i, v := range sorted {
		if v != i {
			t.Fatal("not a permutation")
		}
	}
}

func TestCache(t *testing.T) {
	tok := t5(t)
	path := tatoeba(t, 40)
	cache := t.TempDir()
	opt := Options{CacheDir: cache, SourcePrefix: "translate English to Romanian: ", MaxSourceLength: 32}
	f := Format{SourceLang: "en", TargetLang: "ro"}
	a, err := Load(t.Context(), path, f, tok, opt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(t.Context(), path, f, tok, opt)
	if err != nil {
		t.Fatal(err)
	}
	if a.FromCache || !b.FromCache {
		t.Fatalf("FromCache: first %v, second %v", a.FromCache, b.FromCache)
	}
	for i := range a.Source {
		if !slices.Equal(a.Source[i], b.Source[i]) || !slices.Equal(a.Labels[i], b.Labels[i]) || a.Examples[i].Source != b.Examples[i].Source {
			t.Fatalf("example %d differs after the cache", i)
		}
	}
	opt.SourcePrefix = "summarize: "
	c, err := Load(t.Context(), path, f, tok, opt)
	if err != nil {
		t.Fatal(err)
	}
	if c.FromCache {
		t.Error("a different prefix reused the cache")
	}
	marian, err := tokenize.Load(testenv.RealData(t, "tokenizers", "opus-mt-en-mg"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(t.Context(), path, f, marian, opt)
	if err != nil {
		t.Fatal(err)
	}
	if m.FromCache {
		t.Error("a different tokenizer reused the cache")
	}
}

// TestStream: streaming gives the batches of an in-memory evaluation epoch,
// and skips like it.
func TestStream(t *testing.T) {
	tok := t5(t)
	path := tatoeba(t, 300)
	f := Format{SourceLang: "en", TargetLang: "ro"}
	d, err := Load(t.Context(), path, f, tok, Options{})
	if err != nil {
		t.Fatal(err)
	}
	col := Collator{PadID: 0}
	mem := d.Epoch(Order{BatchSize: 7}, col, 0, 3)
	s, err := OpenStream(path, f, tok, Options{}, col, 7, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := 0
	for mem.Next(t.Context()) {
		if !s.Next(t.Context()) {
			t.Fatalf("stream ended at batch %d: %v", n, s.Err())
		}
		a, b := mem.Batch(), s.Batch()
		if !slices.Equal(a.InputIDs, b.InputIDs) || !slices.Equal(a.Labels, b.Labels) || !slices.Equal(a.Indices, b.Indices) ||
			!slices.Equal(a.DecoderInputIDs, b.DecoderInputIDs) {
			t.Fatalf("batch %d differs", n)
		}
		n++
	}
	if s.Next(t.Context()) {
		t.Error("stream has extra batches")
	}
	if s.Position() != mem.Position() {
		t.Errorf("positions %d vs %d", s.Position(), mem.Position())
	}
}

// TestSciTLDRReferences reads the real multi-reference summarization set
// (the whole dev set when ../shared/data is present: 619 documents, 1453
// references; else the committed sample of every 5th document: 124 and 290):
// list sources are joined with spaces, every target is a reference.
func TestSciTLDRReferences(t *testing.T) {
	root, full := testenv.CorpusRoot(t)
	path := filepath.Join(root, "summarization", "scitldr-a", "dev.jsonl")
	wantDocs, wantRefs := 124, 290
	if full {
		wantDocs, wantRefs = 619, 1453
	}
	exs, skipped, err := ReadAll(path, Format{}, false)
	if err != nil {
		t.Fatal(err)
	}
	refs := 0
	multi := 0
	for _, ex := range exs {
		refs += len(ex.Targets)
		if len(ex.Targets) > 1 {
			multi++
		}
	}
	if len(exs) != wantDocs || refs != wantRefs || len(skipped) != 0 || multi == 0 {
		t.Errorf("%d examples, %d references (%d with several), %d skipped; want %d and %d", len(exs), refs, multi, len(skipped), wantDocs, wantRefs)
	}
	if !strings.HasPrefix(exs[0].Source, "Mixed precision training (MPT) is becoming") || !strings.Contains(exs[0].Source, "GPUs. MPT is typically") {
		t.Errorf("source not joined with spaces: %.120q", exs[0].Source)
	}
	tok := t5(t)
	d, err := Load(t.Context(), path, Format{}, tok, Options{SourcePrefix: "summarize: ", MaxSourceLength: 512, MaxTargetLength: 64})
	if err != nil {
		t.Fatal(err)
	}
	r := d.Epoch(Order{BatchSize: 32}, Collator{PadID: 0}, 0, 0)
	rows := 0
	for r.Next(t.Context()) {
		b := r.Batch()
		if b.SourceLen > 512 || b.TargetLen > 64 || len(b.References) != b.Rows {
			t.Fatalf("batch %d: source %d target %d refs %d rows %d", r.Position(), b.SourceLen, b.TargetLen, len(b.References), b.Rows)
		}
		for i, ix := range b.Indices {
			if !slices.Equal(b.References[i], exs[ix].Targets) {
				t.Fatalf("references of example %d differ", ix)
			}
		}
		rows += b.Rows
	}
	if r.Err() != nil || rows != wantDocs {
		t.Errorf("rows %d, err %v", rows, r.Err())
	}
}
