package predict

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
)

func TestParseShard(t *testing.T) {
	for s, want := range map[string][2]int{"": {0, 1}, "0/1": {0, 1}, "2/3": {2, 3}} {
		i, n, err := ParseShard(s)
		if err != nil || [2]int{i, n} != want {
			t.Errorf("ParseShard(%q) = %d, %d, %v; want %v", s, i, n, err, want)
		}
	}
	for _, s := range []string{"3/3", "-1/2", "1", "1/0", "a/2", "1/b"} {
		if _, _, err := ParseShard(s); !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), "0 <= i < N") {
			t.Errorf("ParseShard(%q): %v", s, err)
		}
	}
}

// The shards of every split are contiguous, in order, cover all lines, and
// differ in size by at most one.
func TestShardRangeCoversInOrder(t *testing.T) {
	for n := range 12 {
		for shards := 1; shards <= 5; shards++ {
			next, smallest, largest := 0, n, 0
			for i := range shards {
				lo, hi := ShardRange(n, i, shards)
				if lo != next || hi < lo {
					t.Fatalf("n=%d shard %d/%d = [%d, %d), want it to start at %d", n, i, shards, lo, hi, next)
				}
				next = hi
				smallest, largest = min(smallest, hi-lo), max(largest, hi-lo)
			}
			if next != n || largest-smallest > 1 {
				t.Errorf("n=%d shards=%d: cover up to %d, sizes %d..%d", n, shards, next, smallest, largest)
			}
		}
	}
}

func TestReadLinesErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	crlf := write("crlf.txt", "a b\r\nc\r\n")
	if got, err := scanLines(crlf, true); err != nil || got.lines != 2 {
		t.Errorf("CRLF lines: %d, %v", got.lines, err)
	}
	r, err := openLines(crlf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a b", "c"} {
		if got, ok, err := r.text(); got != want || !ok || err != nil {
			t.Errorf("line %q %v %v, want %q", got, ok, err, want)
		}
	}
	r.Close()
	for name, tc := range map[string]struct {
		read func() error
		want []string
	}{
		"empty file":   {func() error { _, err := scanLines(write("none.txt", ""), true); return err }, []string{"none.txt has no lines"}},
		"blank line":   {func() error { _, err := scanLines(write("blank.txt", "a\n \nb\n"), true); return err }, []string{"blank.txt:2", "empty line"}},
		"not UTF-8":    {func() error { _, err := scanLines(write("latin1.txt", "caf\xe9\n"), true); return err }, []string{"latin1.txt is not valid UTF-8"}},
		"cut rune":     {func() error { _, err := scanLines(write("cut.txt", "ok\ncaf\xc3"), true); return err }, []string{"cut.txt is not valid UTF-8 (line 2)"}},
		"missing":      {func() error { _, err := scanLines(filepath.Join(dir, "nope.txt"), true); return err }, []string{"nope.txt"}},
		"refs too few": {func() error { return checkRefLines(crlf, 3) }, []string{"crlf.txt has 2 lines, the input has 3"}},
	} {
		err := tc.read()
		if !errors.Is(err, fault.Input) {
			t.Errorf("%s: %v is not fault.Input", name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not mention %q", name, err, w)
			}
		}
	}
}

// A newline inside a prediction must not shift the following lines.
func TestWriteLinesKeepsOneLinePerPrediction(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.txt")
	o, err := openOutput(p, "job")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.write([]string{"a\nb", "c"}); err != nil {
		t.Fatal(err)
	}
	if err := o.finish(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "a b\nc\n" {
		t.Errorf("wrote %q", b)
	}
}

func TestValidate(t *testing.T) {
	ok := Options{Model: "m", Input: "in", Output: "out", BatchSize: 1}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		edit func(*Options)
		want string
	}{
		"no model":    {func(o *Options) { o.Model = "" }, "exactly one"},
		"both models": {func(o *Options) { o.Artifacts = "a" }, "exactly one"},
		"no output":   {func(o *Options) { o.Output = "" }, "--input and --output"},
		"batch 0":     {func(o *Options) { o.BatchSize = 0 }, "--batch-size"},
		"shard 2/2":   {func(o *Options) { o.Shard, o.Shards = 2, 2 }, "0 <= i < N"},
		"shard 1/0":   {func(o *Options) { o.Shard = 1 }, "0 <= i < N"},
	} {
		o := ok
		tc.edit(&o)
		if err := o.Validate(); !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
