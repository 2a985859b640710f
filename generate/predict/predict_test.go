package predict

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// Run on the tiny T5 fixture: the progress calls follow their contract and
// the result matches the files written. (Predictions and scores against HF
// are checked through the CLI in cmd/ortrain.)
func TestRunProgressAndResult(t *testing.T) {
	d := testenv.Testdata(t, "generate", "predict")
	out := filepath.Join(t.TempDir(), "pred.txt")
	beams := 2
	opts := Options{
		Model: testenv.Testdata(t, "models", "t5-tiny"), Tokenizer: filepath.Join(d, "tokenizer.json"),
		Input: filepath.Join(d, "input.txt"), Output: out, Refs: []string{filepath.Join(d, "refs.txt")},
		Shard: 1, Shards: 3, NumBeams: &beams, BatchSize: 3, ORTLibrary: testenv.ORTLibrary(t),
	}
	var calls [][2]int
	res, err := Run(context.Background(), opts, func(done, total int) { calls = append(calls, [2]int{done, total}) })
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := res.Lines[0], res.Lines[1]
	if want0, want1 := ShardRange(24, 1, 3); lo != want0 || hi != want1 {
		t.Fatalf("lines [%d, %d), want [%d, %d)", lo, hi, want0, want1)
	}
	total := hi - lo
	if len(calls) < 2 || calls[0] != [2]int{0, total} || calls[len(calls)-1] != [2]int{total, total} {
		t.Errorf("progress calls %v", calls)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i][0] <= calls[i-1][0] || calls[i][0]-calls[i-1][0] > 3 {
			t.Errorf("progress calls %v: not one batch of at most 3 at a time", calls)
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"); len(got) != total || res.Resumed != 0 {
		t.Errorf("output file %q (%d lines), %d resumed", got, total, res.Resumed)
	}
	rep := res.Report
	if rep == nil || res.ReportPath != out+".metrics.json" || rep.Shard != "1/3" || rep.Lines != [2]int{lo + 1, hi} || rep.NumBeams != 2 || rep.Predictions != total {
		t.Fatalf("report %+v at %s", rep, res.ReportPath)
	}
	var summary strings.Builder
	rep.WriteSummary(&summary)
	if lines := strings.Split(strings.TrimSpace(summary.String()), "\n"); len(lines) != 5 || !strings.HasPrefix(lines[1], "rouge1 F = ") || !strings.HasPrefix(lines[4], "rougeLsum F = ") {
		t.Errorf("summary %q", summary.String())
	}
}
