package score

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/metrics"
)

func write(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// files writes a small corpus: hypotheses and two reference files.
func files(t *testing.T) (dir, hyp string, refs []string) {
	dir = t.TempDir()
	hyp = write(t, dir, "hyp.txt", "the cat sat on the mat\na dog ran in the park\nit is raining today\nwe went home early\n")
	refs = []string{
		write(t, dir, "ref0.txt", "the cat sat on a mat\nthe dog ran through the park\nit rains today\nwe went home early\n"),
		write(t, dir, "ref1.txt", "a cat was sitting on the mat\na dog was running in a park\ntoday it is raining\nwe left early for home\n"),
	}
	return dir, hyp, refs
}

func options(metric, hyp string, refs []string) Options {
	o := DefaultOptions()
	o.Metric, o.Hyp, o.Refs = metric, hyp, refs
	return o
}

func text(t *testing.T, r *Report, asJSON bool) string {
	t.Helper()
	var b bytes.Buffer
	write := r.WriteText
	if asJSON {
		write = r.WriteJSON
	}
	if err := write(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestValidate(t *testing.T) {
	_, hyp, refs := files(t)
	for _, m := range []string{metrics.MetricBLEU, metrics.MetricCHRF, metrics.MetricROUGE} {
		if err := options(m, hyp, refs).Validate(); err != nil {
			t.Errorf("%s defaults: %v", m, err)
		}
	}
	for name, tc := range map[string]struct {
		edit func(*Options)
		want string
	}{
		"no metric":         {func(o *Options) { o.Metric = "" }, "--metric is required"},
		"unknown metric":    {func(o *Options) { o.Metric = "meteor" }, `unknown --metric "meteor"`},
		"no reference":      {func(o *Options) { o.Refs = nil }, "--hyp and at least one --ref"},
		"stats per line":    {func(o *Options) { o.PerLine, o.StatsOut = true, "s.json" }, "--stats-out writes corpus statistics"},
		"negative workers":  {func(o *Options) { o.Workers = -1 }, "--workers -1"},
		"unknown tokenizer": {func(o *Options) { o.Tokenize = "moses" }, "unknown BLEU tokenizer"},
		"order 0":           {func(o *Options) { o.MaxNgramOrder = 0 }, "--max-ngram-order must be at least 1"},
		"order -1":          {func(o *Options) { o.MaxNgramOrder = -1 }, "max n-gram order must be positive"},
		"bootstrap 1":       {func(o *Options) { o.Bootstrap.Samples = 1 }, "--bootstrap must be 0 (off) or at least 2"},
		"bootstrap, line":   {func(o *Options) { o.Bootstrap.Samples, o.PerLine = 5, true }, "--bootstrap needs corpus scoring"},
		"negative seed":     {func(o *Options) { o.Bootstrap.Seed = -1 }, "--seed must not be negative"},
		"chrF beta 0":       {func(o *Options) { o.Metric, o.Beta = metrics.MetricCHRF, 0 }, "--char-order and --beta must be at least 1"},
		"chrF order -1":     {func(o *Options) { o.Metric, o.CharOrder = metrics.MetricCHRF, -1 }, "must not be negative"},
		"ROUGE type":        {func(o *Options) { o.Metric, o.ROUGETypes = metrics.MetricROUGE, []string{"rougeW"} }, "invalid ROUGE type"},
		"ROUGE split":       {func(o *Options) { o.Metric, o.SplitSummaries = metrics.MetricROUGE, true }, "Punkt"},
		"ROUGE bootstrap":   {func(o *Options) { o.Metric, o.Bootstrap.Samples = metrics.MetricROUGE, -1 }, "--bootstrap must not be negative"},
		"ROUGE seed":        {func(o *Options) { o.Metric, o.Bootstrap.Seed = metrics.MetricROUGE, 1<<32 }, "2**32 - 1"},
		"ROUGE confidence":  {func(o *Options) { o.Metric, o.Bootstrap.Samples, o.Bootstrap.Confidence = metrics.MetricROUGE, 5, 1.5 }, "confidence_interval"},
	} {
		o := options(metrics.MetricBLEU, hyp, refs)
		tc.edit(&o)
		err := o.Validate()
		if !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want fault.Settings with %q", name, err, tc.want)
		}
		if _, err := Run(context.Background(), o); !errors.Is(err, fault.Settings) {
			t.Errorf("%s: Run ran: %v", name, err)
		}
	}
	// ROUGE takes one resample, and per line ignores the interval.
	o := options(metrics.MetricROUGE, hyp, refs)
	o.Bootstrap.Samples, o.Bootstrap.Confidence, o.PerLine = 1, 2, true
	if err := o.Validate(); err != nil {
		t.Errorf("ROUGE per line with --bootstrap: %v", err)
	}
}

func TestRunInputErrors(t *testing.T) {
	dir, hyp, refs := files(t)
	short := write(t, dir, "short.txt", "one line\n")
	for name, tc := range map[string]struct {
		o    Options
		want string
	}{
		"missing hyp":  {options(metrics.MetricBLEU, filepath.Join(dir, "none.txt"), refs), "none.txt"},
		"short ref":    {options(metrics.MetricCHRF, hyp, []string{short}), "short.txt: 1 segments"},
		"not JSON":     {func() Options { o := options(metrics.MetricROUGE, hyp, refs); o.JSONL = true; return o }(), "hyp.txt:1: not a JSON string"},
		"empty ref":    {options(metrics.MetricBLEU, hyp, []string{write(t, dir, "empty.txt", "")}), "file is empty"},
		"invalid UTF8": {options(metrics.MetricBLEU, write(t, dir, "bad.txt", "a\n\xff\nc\nd\n"), refs), "bad.txt:2: invalid UTF-8"},
	} {
		_, err := Run(context.Background(), tc.o)
		if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want fault.Input with %q", name, err, tc.want)
		}
	}
}

// Shards scored with StatsOut and merged print what one pass prints, for
// every metric, with and without bootstrap; the merged statistics equal
// the single pass's.
func TestMergeEqualsOnePass(t *testing.T) {
	dir, hyp, refs := files(t)
	lines := func(p string) []string {
		b, _ := os.ReadFile(p)
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	part := func(name string, l []string, cut [2]int) string {
		return write(t, dir, name, strings.Join(l[cut[0]:cut[1]], "\n")+"\n")
	}
	h, r0, r1 := lines(hyp), lines(refs[0]), lines(refs[1])
	for _, m := range []string{metrics.MetricBLEU, metrics.MetricCHRF, metrics.MetricROUGE} {
		for _, boot := range []int{0, 20} {
			o := options(m, hyp, refs)
			o.Bootstrap.Samples = boot
			o.StatsOut = filepath.Join(dir, "whole.json")
			whole, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			var shards []string
			for k, cut := range [][2]int{{0, 1}, {1, 4}} {
				name := m + string(rune('a'+k))
				s := options(m, part(name+".hyp", h, cut), []string{part(name+".r0", r0, cut), part(name+".r1", r1, cut)})
				s.Bootstrap.Samples = boot
				s.StatsOut = filepath.Join(dir, name+".json")
				if _, err := Run(context.Background(), s); err != nil {
					t.Fatal(err)
				}
				shards = append(shards, s.StatsOut)
			}
			mo := MergeOptions{Files: shards, StatsOut: filepath.Join(dir, "merged.json"), Bootstrap: o.Bootstrap}
			merged, err := Merge(context.Background(), mo)
			if err != nil {
				t.Fatal(err)
			}
			for _, asJSON := range []bool{false, true} {
				if got, want := text(t, merged, asJSON), text(t, whole, asJSON); got != want {
					t.Errorf("%s bootstrap %d json %v: merged\n%s\none pass\n%s", m, boot, asJSON, got, want)
				}
			}
			if a, b := corpusOf(t, o.StatsOut), corpusOf(t, mo.StatsOut); a != b {
				t.Errorf("%s bootstrap %d: merged statistics score %s, one pass's %s", m, boot, b, a)
			}
		}
	}
}

// corpusOf is the corpus score of a statistics file.
func corpusOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := metrics.ReadStatsFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Scorer()
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.CorpusScore(metrics.BootstrapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c.String()
}

func TestMergeErrors(t *testing.T) {
	dir, hyp, refs := files(t)
	stats := func(m string, boot int) string {
		o := options(m, hyp, refs)
		o.Bootstrap.Samples = boot
		o.StatsOut = filepath.Join(dir, m+string(rune('0'+boot%10))+".json")
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		return o.StatsOut
	}
	bleu, chrf, rouge, rougeBoot := stats(metrics.MetricBLEU, 0), stats(metrics.MetricCHRF, 0), stats(metrics.MetricROUGE, 0), stats(metrics.MetricROUGE, 2)
	for name, tc := range map[string]struct {
		o    MergeOptions
		kind error
		want string
	}{
		"no files":             {MergeOptions{}, fault.Settings, "--merge needs statistics files"},
		"not statistics":       {MergeOptions{Files: []string{hyp}}, fault.Input, "hyp.txt: not an ortrain statistics file"},
		"missing":              {MergeOptions{Files: []string{filepath.Join(dir, "none.json")}}, fault.Input, "none.json"},
		"two metrics":          {MergeOptions{Files: []string{bleu, chrf}}, fault.Input, "statistics 2 are for chrf"},
		"BLEU no segments":     {MergeOptions{Files: []string{bleu}, Bootstrap: Bootstrap{Samples: 5}}, fault.Input, "bootstrap needs every segment"},
		"ROUGE no pairs":       {MergeOptions{Files: []string{rouge}, Bootstrap: Bootstrap{Samples: 5}}, fault.Input, "--bootstrap needs every pair's scores"},
		"BLEU bootstrap 1":     {MergeOptions{Files: []string{bleu}, Bootstrap: Bootstrap{Samples: 1}}, fault.Settings, "at least 2"},
		"ROUGE seed too large": {MergeOptions{Files: []string{rougeBoot}, Bootstrap: Bootstrap{Samples: 5, Seed: 1 << 32}}, fault.Settings, "2**32 - 1"},
		"ROUGE bootstrap < 0":  {MergeOptions{Files: []string{rougeBoot}, Bootstrap: Bootstrap{Samples: -1}}, fault.Settings, "must not be negative"},
		"ROUGE confidence":     {MergeOptions{Files: []string{rougeBoot}, Bootstrap: Bootstrap{Samples: 5, Confidence: 2}}, fault.Settings, "confidence_interval"},
	} {
		_, err := Merge(context.Background(), tc.o)
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %v with %q", name, err, tc.kind, tc.want)
		}
	}
}

// Per line: one score per line in input order, sentence BLEU with effective
// order unless turned off.
func TestPerLine(t *testing.T) {
	_, hyp, refs := files(t)
	o := options(metrics.MetricBLEU, hyp, refs)
	o.PerLine = true
	rep, err := Run(context.Background(), o)
	if err != nil || len(rep.Segments) != 4 || rep.Corpus != nil {
		t.Fatalf("%+v, %v", rep, err)
	}
	out := text(t, rep, false)
	if strings.Count(out, "\n") != 4 || strings.Count(out, "eff:yes") != 4 {
		t.Errorf("sentence BLEU:\n%s", out)
	}
	off := false
	o.EffectiveOrder = &off
	rep, _ = Run(context.Background(), o)
	if out := text(t, rep, true); strings.Count(out, "\n") != 4 || strings.Count(out, `eff:no`) != 4 {
		t.Errorf("sentence BLEU without effective order, JSON:\n%s", out)
	}
	o.Metric = metrics.MetricROUGE
	rep, _ = Run(context.Background(), o)
	if out := text(t, rep, true); strings.Count(out, "\n") != 4 || !strings.HasPrefix(out, `{"rouge1":{"precision":`) {
		t.Errorf("ROUGE per line, JSON:\n%s", out)
	}
}

// The JSON layouts of the corpus scores: chrF's score and signature only,
// sacrebleu's confidence fields after a bootstrap, ROUGE's types in the
// order asked for, one per line.
func TestCorpusJSON(t *testing.T) {
	_, hyp, refs := files(t)
	o := options(metrics.MetricCHRF, hyp, refs)
	rep, _ := Run(context.Background(), o)
	if out := text(t, rep, true); !strings.HasPrefix(out, "{\n  \"score\": ") || strings.Count(out, "\n") != 4 {
		t.Errorf("chrF:\n%s", out)
	}
	o.Bootstrap.Samples = 10
	rep, _ = Run(context.Background(), o)
	out := text(t, rep, true)
	if !strings.Contains(out, `"confidence_mean"`) || !strings.Contains(out, "|bs:10|seed:12345|") {
		t.Errorf("chrF with bootstrap:\n%s", out)
	}
	o.Metric, o.ROUGETypes = metrics.MetricROUGE, ParseROUGETypes(" rougeL, rouge1,,")
	rep, _ = Run(context.Background(), o)
	out = text(t, rep, true)
	if !strings.HasPrefix(out, "{\n  \"rougeL\":{\"precision\":") || !strings.Contains(out, "},\n  \"rouge1\":{") ||
		!strings.Contains(out, `"low":{`) || !strings.HasSuffix(out, "}}\n}\n") {
		t.Errorf("ROUGE:\n%s", out)
	}
	if !strings.HasPrefix(text(t, rep, false), "ROUGE (rouge-score "+metrics.RougeScoreVersion+"), mean of 4 pairs\nrougeL ") {
		t.Errorf("ROUGE text:\n%s", text(t, rep, false))
	}
}

func TestParseROUGETypes(t *testing.T) {
	if got := ParseROUGETypes(" rouge1 ,rougeLsum,, "); !reflect.DeepEqual(got, []string{"rouge1", "rougeLsum"}) {
		t.Errorf("got %q", got)
	}
	if got := ParseROUGETypes(" , "); got != nil {
		t.Errorf("blank list: %q", got)
	}
}

// sacrebleu warns when 100 or more hypotheses end in " ."; Force silences it.
func TestWarnsOfTokenizedHypotheses(t *testing.T) {
	dir := t.TempDir()
	hyp := write(t, dir, "hyp.txt", strings.Repeat("the cat sat .\n", 100))
	ref := write(t, dir, "ref.txt", strings.Repeat("the cat sat.\n", 100))
	for _, force := range []bool{false, true} {
		var warned []string
		o := options(metrics.MetricBLEU, hyp, []string{ref})
		o.Force = force
		o.Warn = func(msg string) { warned = append(warned, msg) }
		if _, err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		if want := !force; (len(warned) == 1) != want || (want && !strings.HasPrefix(warned[0], "100 hypotheses end in a tokenized period")) {
			t.Errorf("force=%v: warnings %q", force, warned)
		}
	}
}

func TestCancelled(t *testing.T) {
	_, hyp, refs := files(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, options(metrics.MetricBLEU, hyp, refs)); !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
}
