package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/metrics"
)

// The references are testdata/metrics/*.json from scripts/refs/metrics_refs.py
// (sacrebleu 2.6.0, rouge-score 0.1.2).

func runScoreCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"ortrain"}, args...), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func loadScoreRefs(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(testenv.Testdata(t, "metrics", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// writeScoreSegments writes one file per reference position; with jsonl,
// missing references are null.
func writeScoreSegments(t *testing.T, dir, name string, hyps []string, refs [][]string, jsonl bool) (string, []string) {
	t.Helper()
	line := func(s string, present bool) string {
		if !jsonl {
			return s + "\n"
		}
		if !present {
			return "null\n"
		}
		b, _ := json.Marshal(s)
		return string(b) + "\n"
	}
	var hb strings.Builder
	nref := 0
	for i, h := range hyps {
		hb.WriteString(line(h, true))
		nref = max(nref, len(refs[i]))
	}
	hp := filepath.Join(dir, name+".hyp")
	if err := os.WriteFile(hp, []byte(hb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var rps []string
	for k := 0; k < nref; k++ {
		var rb strings.Builder
		for i := range hyps {
			if k < len(refs[i]) {
				rb.WriteString(line(refs[i][k], true))
			} else {
				rb.WriteString(line("", false))
			}
		}
		rp := filepath.Join(dir, name+".ref"+string(rune('0'+k)))
		if err := os.WriteFile(rp, []byte(rb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		rps = append(rps, "--ref", rp)
	}
	return hp, rps
}

func scoreClose(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

type bleuRefs struct {
	Datasets map[string]struct {
		Hyps []string   `json:"hyps"`
		Refs [][]string `json:"refs"`
	} `json:"datasets"`
	Corpus []struct {
		Data    string            `json:"data"`
		Options map[string]any    `json:"options"`
		Corpus  metrics.BLEUScore `json:"corpus"`
	} `json:"corpus"`
	Sentence []struct {
		Data      string              `json:"data"`
		Options   map[string]any      `json:"options"`
		Sentences []metrics.BLEUScore `json:"sentences"`
	} `json:"sentence"`
}

func TestScoreBLEUMatchesSacreBLEU(t *testing.T) {
	var ref bleuRefs
	loadScoreRefs(t, "bleu.json", &ref)
	dir := t.TempDir()
	checked := 0
	for _, c := range ref.Corpus {
		if !(c.Data == "flores_eng_multiref" || c.Data == "tatoeba_ro_perturbed") {
			continue
		}
		args := []string{"score", "--metric", "bleu", "--json"}
		for k, v := range c.Options {
			switch v := v.(type) {
			case bool:
				if v {
					args = append(args, "--"+strings.ReplaceAll(k, "_", "-"))
				}
			case string:
				args = append(args, "--"+strings.ReplaceAll(k, "_", "-"), v)
			case float64:
				args = append(args, "--"+strings.ReplaceAll(k, "_", "-"), strings.TrimSuffix(strings.TrimRight(json.Number(scoreJSON(v)).String(), "0"), "."))
			}
		}
		d := ref.Datasets[c.Data]
		hp, rps := writeScoreSegments(t, dir, c.Data, d.Hyps, d.Refs, true)
		args = append(append(args, "--jsonl", "--hyp", hp), rps...)
		code, out, errOut := runScoreCLI(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		var got metrics.BLEUScore
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		w := c.Corpus
		if !scoreClose(got.Score, w.Score) || got.Signature != w.Signature || got.SysLen != w.SysLen || got.RefLen != w.RefLen || !scoreClose(got.BP, w.BP) {
			t.Errorf("%v:\n got %+v\nwant %+v", args, got, w)
		}
		for i := range w.Counts {
			if !scoreClose(got.Counts[i], w.Counts[i]) || !scoreClose(got.Totals[i], w.Totals[i]) || !scoreClose(got.Precisions[i], w.Precisions[i]) {
				t.Errorf("%v: statistics differ:\n got %+v\nwant %+v", args, got, w)
				break
			}
		}
		checked++
	}
	if checked < 100 {
		t.Fatalf("only %d cases checked", checked)
	}
	t.Logf("%d corpus BLEU cases through the command line", checked)
}

func scoreJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestScoreSentenceBLEU(t *testing.T) {
	var ref bleuRefs
	loadScoreRefs(t, "bleu.json", &ref)
	dir := t.TempDir()
	for _, c := range ref.Sentence {
		if len(c.Options) != 0 || c.Data != "adversarial" {
			continue // sentence_bleu's defaults only
		}
		d := ref.Datasets[c.Data]
		hp, rps := writeScoreSegments(t, dir, "sent", d.Hyps, d.Refs, true)
		code, out, errOut := runScoreCLI(t, append([]string{"score", "--metric", "bleu", "--sentence", "--json", "--jsonl", "--hyp", hp}, rps...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != len(c.Sentences) {
			t.Fatalf("%d lines, want %d", len(lines), len(c.Sentences))
		}
		for i, l := range lines {
			var got metrics.BLEUScore
			if err := json.Unmarshal([]byte(l), &got); err != nil {
				t.Fatal(err)
			}
			if !scoreClose(got.Score, c.Sentences[i].Score) || !strings.Contains(got.Signature, "eff:yes") {
				t.Errorf("line %d: got %v (%s) want %v", i+1, got.Score, got.Signature, c.Sentences[i].Score)
			}
		}
		return
	}
	t.Fatal("no default sentence case in bleu.json")
}

func TestScoreCHRF(t *testing.T) {
	var ref struct {
		Datasets map[string]struct {
			Hyps []string   `json:"hyps"`
			Refs [][]string `json:"refs"`
		} `json:"datasets"`
		Corpus []struct {
			Data    string              `json:"data"`
			Options metrics.CHRFOptions `json:"options"`
			Corpus  metrics.CHRFScore   `json:"corpus"`
		} `json:"corpus"`
	}
	loadScoreRefs(t, "chrf.json", &ref)
	dir := t.TempDir()
	n := 0
	for _, c := range ref.Corpus {
		if c.Data != "flores_eng_multiref" {
			continue
		}
		d := ref.Datasets[c.Data]
		hp, rps := writeScoreSegments(t, dir, "chrf", d.Hyps, d.Refs, true)
		o := c.Options
		args := []string{"score", "--metric", "chrf", "--json", "--jsonl", "--hyp", hp, "--word-order", scoreItoa(o.WordOrder)}
		if o.CharOrder != 0 {
			args = append(args, "--char-order", scoreItoa(o.CharOrder))
		}
		if o.Beta != 0 {
			args = append(args, "--beta", scoreItoa(o.Beta))
		}
		for flag, on := range map[string]bool{"--lowercase": o.Lowercase, "--whitespace": o.Whitespace, "--eps-smoothing": o.EpsSmoothing} {
			if on {
				args = append(args, flag)
			}
		}
		code, out, errOut := runScoreCLI(t, append(args, rps...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !scoreClose(got["score"].(float64), c.Corpus.Score) || got["signature"] != c.Corpus.Signature {
			t.Errorf("%v: got %v want %+v", args, got, c.Corpus)
		}
		n++
	}
	t.Logf("%d chrF cases through the command line", n)
}

func scoreItoa(i int) string { return scoreJSON(i) }

type rougeRefs struct {
	Datasets map[string]struct {
		Preds   []string   `json:"preds"`
		Targets [][]string `json:"targets"`
	} `json:"datasets"`
	Cases []struct {
		Data       string                          `json:"data"`
		Types      []string                        `json:"types"`
		UseStemmer bool                            `json:"use_stemmer"`
		Pairs      []map[string]metrics.ROUGEScore `json:"pairs"`
		Mean       map[string]metrics.ROUGEScore   `json:"mean"`
		Bootstrap  struct {
			Seed       int                              `json:"seed"`
			NSamples   int                              `json:"n_samples"`
			Confidence float64                          `json:"confidence"`
			Result     map[string]metrics.ROUGEInterval `json:"result"`
		} `json:"bootstrap"`
	} `json:"cases"`
}

type rougeOut struct {
	metrics.ROUGEScore
	Low, Mid, High *metrics.ROUGEScore
}

func sameROUGE(a, b metrics.ROUGEScore) bool {
	return scoreClose(a.Precision, b.Precision) && scoreClose(a.Recall, b.Recall) && scoreClose(a.FMeasure, b.FMeasure)
}

func TestScoreROUGEWithBootstrap(t *testing.T) {
	var ref rougeRefs
	loadScoreRefs(t, "rouge.json", &ref)
	dir := t.TempDir()
	n := 0
	for _, c := range ref.Cases {
		if c.Data != "scitldr_lead3_multiref" && c.Data != "adversarial" {
			continue
		}
		d := ref.Datasets[c.Data]
		hp, rps := writeScoreSegments(t, dir, "rouge", d.Preds, d.Targets, true)
		args := []string{"score", "--metric", "rouge", "--json", "--jsonl", "--hyp", hp, "--rouge-types", strings.Join(c.Types, ","),
			"--bootstrap", scoreItoa(c.Bootstrap.NSamples), "--seed", scoreItoa(c.Bootstrap.Seed), "--confidence", scoreJSON(c.Bootstrap.Confidence)}
		if c.UseStemmer {
			args = append(args, "--use-stemmer")
		}
		code, out, errOut := runScoreCLI(t, append(args, rps...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got map[string]rougeOut
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(strings.TrimSpace(out), `{`+"\n"+`  "`+c.Types[0]+`"`) {
			t.Errorf("types not in the order asked for:\n%s", out)
		}
		for _, typ := range c.Types {
			g, w := got[typ], c.Bootstrap.Result[typ]
			if !sameROUGE(g.ROUGEScore, c.Mean[typ]) || g.Low == nil || !sameROUGE(*g.Low, w.Low) || !sameROUGE(*g.Mid, w.Mid) || !sameROUGE(*g.High, w.High) {
				t.Errorf("%s %s stem=%v: got %+v want mean %+v interval %+v", c.Data, typ, c.UseStemmer, g, c.Mean[typ], w)
			}
		}
		// --per-line: one object per pair.
		code, out, _ = runScoreCLI(t, append([]string{"score", "--metric", "rouge", "--per-line", "--json", "--jsonl", "--hyp", hp,
			"--rouge-types", strings.Join(c.Types, ","), "--use-stemmer=" + scoreJSON(c.UseStemmer)}, rps...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != len(c.Pairs) {
			t.Fatalf("per-line: exit %d, %d lines", code, len(lines))
		}
		for i, l := range lines {
			var pg map[string]metrics.ROUGEScore
			if err := json.Unmarshal([]byte(l), &pg); err != nil {
				t.Fatal(err)
			}
			for _, typ := range c.Types {
				if !sameROUGE(pg[typ], c.Pairs[i][typ]) {
					t.Errorf("per-line %d %s: got %+v want %+v", i+1, typ, pg[typ], c.Pairs[i][typ])
				}
			}
		}
		n++
	}
	t.Logf("%d ROUGE cases through the command line", n)
}

// Shards scored with --stats-out and combined with --merge print exactly
// what one pass prints.
func TestScoreMergeEqualsSinglePass(t *testing.T) {
	var ref rougeRefs
	loadScoreRefs(t, "rouge.json", &ref)
	d := ref.Datasets["scitldr_lead3_multiref"]
	dir := t.TempDir()
	for _, metricArgs := range [][]string{
		{"--metric", "bleu", "--tokenize", "intl"},
		{"--metric", "bleu", "--bootstrap", "100", "--seed", "3"},
		{"--metric", "chrf", "--word-order", "2"},
		{"--metric", "chrf", "--bootstrap", "50"},
		{"--metric", "rouge", "--use-stemmer", "--bootstrap", "200", "--seed", "7"},
	} {
		hp, rps := writeScoreSegments(t, dir, "all", d.Preds, d.Targets, true)
		whole := append(append([]string{"score", "--json", "--jsonl", "--hyp", hp}, metricArgs...), rps...)
		code, want, errOut := runScoreCLI(t, whole...)
		if code != 0 {
			t.Fatalf("%v: exit %d %s", whole, code, errOut)
		}
		var statsFiles []string
		for k, lo := 0, 0; lo < len(d.Preds); k, lo = k+1, lo+50 {
			hi := min(lo+50, len(d.Preds))
			hp, rps := writeScoreSegments(t, dir, "shard"+scoreItoa(k), d.Preds[lo:hi], d.Targets[lo:hi], true)
			sp := filepath.Join(dir, "stats"+scoreItoa(k)+".json")
			args := append(append([]string{"score", "--jsonl", "--stats-out", sp, "--hyp", hp}, metricArgs...), rps...)
			if code, _, errOut := runScoreCLI(t, args...); code != 0 {
				t.Fatalf("%v: exit %d %s", args, code, errOut)
			}
			statsFiles = append(statsFiles, sp)
		}
		mergeArgs := []string{"score", "--merge", "--json"}
		for i, a := range metricArgs {
			if a == "--bootstrap" || a == "--seed" {
				mergeArgs = append(mergeArgs, a, metricArgs[i+1])
			}
		}
		code, got, errOut := runScoreCLI(t, append(mergeArgs, statsFiles...)...)
		if code != 0 {
			t.Fatalf("merge: exit %d %s", code, errOut)
		}
		if got != want {
			t.Errorf("%v: merged output\n%s\ndiffers from single pass\n%s", metricArgs, got, want)
		}
	}
}

func TestScoreBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hyp := write("hyp.txt", "the cat sat\non the mat\n")
	ref := write("ref.txt", "the cat sat\non a mat\n")
	short := write("short.txt", "only one line\n")
	empty := write("empty.txt", "")
	badUTF8 := write("bad.txt", "fine\nbroken \xff byte\n")
	crlf := write("crlf.txt", "the cat sat\r\non a mat\r\n")
	noFinalNewline := write("nonl.txt", "the cat sat\non a mat")
	stats := filepath.Join(dir, "bleu.stats")
	runScoreCLI(t, "score", "--metric", "bleu", "--hyp", hyp, "--ref", ref, "--stats-out", stats)
	chrfStats := filepath.Join(dir, "chrf.stats")
	runScoreCLI(t, "score", "--metric", "chrf", "--hyp", hyp, "--ref", ref, "--stats-out", chrfStats)
	intlStats := filepath.Join(dir, "intl.stats")
	runScoreCLI(t, "score", "--metric", "bleu", "--tokenize", "intl", "--hyp", hyp, "--ref", ref, "--stats-out", intlStats)

	cases := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"--metric", "bleu", "--hyp", hyp, "--ref", short}, exitData, "short.txt: 1 segments, but the hypotheses"},
		{[]string{"--metric", "rouge", "--hyp", hyp, "--ref", ref, "--ref", short}, exitData, "files must align"},
		{[]string{"--metric", "bleu", "--hyp", empty, "--ref", ref}, exitData, "empty.txt: file is empty"},
		{[]string{"--metric", "chrf", "--hyp", hyp, "--ref", badUTF8}, exitData, "bad.txt:2: invalid UTF-8"},
		{[]string{"--metric", "bleu", "--hyp", hyp, "--ref", filepath.Join(dir, "missing.txt")}, exitData, "missing.txt"},
		{[]string{"--metric", "bleu", "--jsonl", "--hyp", hyp, "--ref", ref}, exitData, "hyp.txt:1: not a JSON string"},
		{[]string{"--metric", "meteor", "--hyp", hyp, "--ref", ref}, exitUsage, "unknown --metric"},
		{[]string{"--metric", "bleu", "--tokenize", "bogus", "--hyp", empty, "--ref", ref}, exitUsage, "unknown BLEU tokenizer"},
		{[]string{"--metric", "bleu", "--hyp", hyp}, exitUsage, "--ref"},
		{[]string{"--metric", "bleu", "--tokenize", "ja-mecab", "--hyp", hyp, "--ref", ref}, exitUsage, "unknown BLEU tokenizer"},
		{[]string{"--metric", "bleu", "--smooth-method", "laplace", "--hyp", hyp, "--ref", ref}, exitUsage, "unknown smoothing"},
		{[]string{"--metric", "rouge", "--rouge-types", "rouge1,rougeW", "--hyp", hyp, "--ref", ref}, exitUsage, "invalid ROUGE type"},
		{[]string{"--metric", "rouge", "--split-summaries", "--hyp", hyp, "--ref", ref}, exitUsage, "Punkt"},
		{[]string{"--merge"}, exitUsage, "statistics files"},
		{[]string{"--metric", "bleu", "--bootstrap", "1", "--hyp", hyp, "--ref", ref}, exitUsage, "--bootstrap must be 0"},
		{[]string{"--metric", "chrf", "--bootstrap", "10", "--sentence", "--hyp", hyp, "--ref", ref}, exitUsage, "--bootstrap needs corpus scoring"},
		{[]string{"--merge", "--bootstrap", "10", stats}, exitData, "bootstrap needs every segment"},
		{[]string{"--metric", "bleu", "--sentence", "--stats-out", stats, "--hyp", hyp, "--ref", ref}, exitUsage, "--stats-out"},
		{[]string{"--metric", "rouge", "--hyp", hyp, "--ref", ref, "extra"}, exitUsage, "unexpected arguments"},
		{[]string{"--merge", stats, chrfStats}, exitData, "statistics 2 are for chrf"},
		{[]string{"--merge", stats, intlStats}, exitData, "only shards scored alike merge"},
		{[]string{"--merge", hyp}, exitData, "not an ortrain statistics file"},
	}
	for _, c := range cases {
		code, _, errOut := runScoreCLI(t, append([]string{"score"}, c.args...)...)
		if code != c.code || !strings.Contains(errOut, c.contains) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want it to contain %q)", c.args, code, c.code, errOut, c.contains)
		}
	}
	// CRLF line ends and a missing final newline score as the sacrebleu
	// command line scores them: lines are right-stripped.
	_, want, _ := runScoreCLI(t, "score", "--metric", "bleu", "--json", "--hyp", hyp, "--ref", ref)
	for _, r := range []string{crlf, noFinalNewline} {
		if _, got, _ := runScoreCLI(t, "score", "--metric", "bleu", "--json", "--hyp", hyp, "--ref", r); got != want {
			t.Errorf("%s: %s, want %s", r, got, want)
		}
	}
	var s metrics.BLEUScore
	if err := json.Unmarshal([]byte(want), &s); err != nil || s.SysLen != 6 || s.RefLen != 6 {
		t.Errorf("plain BLEU output %q", want)
	}
}

// --bootstrap for BLEU and chrF: sacrebleu's confidence_mean/confidence_var
// and signature (bs, seed).
func TestScoreSacreBLEUBootstrap(t *testing.T) {
	for _, file := range []string{"bleu.json", "chrf.json"} {
		var ref struct {
			Datasets map[string]struct {
				Hyps []string   `json:"hyps"`
				Refs [][]string `json:"refs"`
			} `json:"datasets"`
			Bootstrap []struct {
				Data       string         `json:"data"`
				Options    map[string]any `json:"options"`
				Seed       int            `json:"seed"`
				NBootstrap int            `json:"n_bootstrap"`
				Score      float64        `json:"score"`
				Mean       float64        `json:"mean"`
				CI         float64        `json:"ci"`
				Signature  string         `json:"signature"`
			} `json:"bootstrap"`
		}
		loadScoreRefs(t, file, &ref)
		dir := t.TempDir()
		n := 0
		for _, c := range ref.Bootstrap {
			if len(c.Options) != 0 {
				continue
			}
			d := ref.Datasets[c.Data]
			hp, rps := writeScoreSegments(t, dir, "boot", d.Hyps, d.Refs, true)
			args := append([]string{"score", "--metric", strings.TrimSuffix(file, ".json"), "--json", "--jsonl", "--hyp", hp,
				"--bootstrap", scoreItoa(c.NBootstrap), "--seed", scoreItoa(c.Seed)}, rps...)
			code, out, errOut := runScoreCLI(t, args...)
			if code != 0 {
				t.Fatalf("%v: exit %d %s", args, code, errOut)
			}
			var got struct {
				Score          float64 `json:"score"`
				Signature      string  `json:"signature"`
				ConfidenceMean float64 `json:"confidence_mean"`
				ConfidenceVar  float64 `json:"confidence_var"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatal(err)
			}
			if !scoreClose(got.Score, c.Score) || !scoreClose(got.ConfidenceMean, c.Mean) || !scoreClose(got.ConfidenceVar, c.CI) || got.Signature != c.Signature {
				t.Errorf("%s %s seed %d: got %+v, want %v %v %v %s", file, c.Data, c.Seed, got, c.Score, c.Mean, c.CI, c.Signature)
			}
			n++
		}
		if n == 0 {
			t.Fatalf("no default-option bootstrap case in %s", file)
		}
	}
}
