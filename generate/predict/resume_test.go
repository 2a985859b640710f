package predict

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/testenv"
)

func resumeOptions(t *testing.T, out string) Options {
	d := testenv.Testdata(t, "generate", "predict")
	beams := 2
	return Options{
		Model: testenv.Testdata(t, "models", "t5-tiny"), Tokenizer: filepath.Join(d, "tokenizer.json"),
		Input: filepath.Join(d, "input.txt"), Output: out, Refs: []string{filepath.Join(d, "refs.txt")},
		NumBeams: &beams, BatchSize: 4, ORTLibrary: testenv.ORTLibrary(t),
	}
}

// predict writes its lines as it goes: interrupted, it says how far it
// got and keeps those lines; run again, it continues after them and ends
// with the output and report of an uninterrupted run. (Before, it held
// everything, wrote at the end, and an interruption lost the whole run
// with the message "context canceled".)
func TestPredictResumesAfterInterruption(t *testing.T) {
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.txt")
	if _, err := Run(context.Background(), resumeOptions(t, whole), nil); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(whole)
	wantReport, _ := os.ReadFile(whole + ".bleu-stats.json")

	out := filepath.Join(dir, "pred.txt")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Run(ctx, resumeOptions(t, out), func(done, total int) {
		if done >= 8 {
			cancel()
		}
	})
	if !errors.Is(err, fault.Interrupted) || !strings.Contains(err.Error(), "interrupted after 8 of 24 lines") || !strings.Contains(err.Error(), "pred.txt.partial") {
		t.Fatalf("interrupted run: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an unfinished output under the final name: %v", err)
	}
	partial, _ := os.ReadFile(out + ".partial")
	if string(partial) != strings.Join(strings.SplitAfter(string(want), "\n")[:8], "") {
		t.Fatalf("partial output %q is not the first 8 lines of %q", partial, want)
	}
	// a line cut short by a kill is done again
	os.WriteFile(out+".partial", append(partial, "half a predic"...), 0o644)

	res, err := Run(context.Background(), resumeOptions(t, out), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Resumed != 8 {
		t.Errorf("resumed %d lines, want 8", res.Resumed)
	}
	got, _ := os.ReadFile(out)
	if string(got) != string(want) {
		t.Errorf("resumed output differs:\n%s\nwant\n%s", got, want)
	}
	if b, _ := os.ReadFile(out + ".bleu-stats.json"); string(b) != string(wantReport) {
		t.Errorf("resumed statistics differ:\n%s\nwant\n%s", b, wantReport)
	}
	for _, p := range []string{out + ".partial", out + ".partial.json"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind", p)
		}
	}

	// another job (other settings) does not take over a partial output
	ctx, cancel = context.WithCancel(context.Background())
	Run(ctx, resumeOptions(t, out), func(done, total int) {
		if done >= 4 {
			cancel()
		}
	})
	opts := resumeOptions(t, out)
	one := 1
	opts.NumBeams = &one
	if res, err := Run(context.Background(), opts, nil); err != nil || res.Resumed != 0 {
		t.Errorf("other settings: resumed %v, %v", res, err)
	}
}

// An output that cannot be written fails before anything is decoded.
func TestPredictUnwritableOutputFailsFirst(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644) // a file where the output's folder should be
	calls := 0
	_, err := Run(context.Background(), resumeOptions(t, filepath.Join(notDir, "pred.txt")), func(int, int) { calls++ })
	if !errors.Is(err, fault.Input) || calls != 0 {
		t.Errorf("unwritable output: %v after %d progress calls", err, calls)
	}
}

// An output that would overwrite an input is refused before anything runs.
func TestPredictOutputNeverOverwritesAnInput(t *testing.T) {
	dir := t.TempDir()
	opts := resumeOptions(t, "")
	input := filepath.Join(dir, "in.txt")
	b, _ := os.ReadFile(opts.Input)
	os.WriteFile(input, b, 0o644)
	opts.Input = input
	for _, out := range []string{input, opts.Refs[0], filepath.Join(opts.Model, "config.json")} {
		o := opts
		o.Output = out
		if _, err := Run(context.Background(), o, nil); !errors.Is(err, fault.Settings) {
			t.Errorf("--output %s: %v", out, err)
		}
	}
	if after, _ := os.ReadFile(input); string(after) != string(b) {
		t.Fatal("the input changed")
	}
}
