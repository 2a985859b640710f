package data

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// A record far longer than the token limits is cut while it is read: the
// token ids are those of the whole text, truncated, and memory stays a
// small multiple of the line (one 200 MB line cost 25-43x its size and
// training crashed even with a 16-token source limit).
func TestHugeRecordCutWhileReading(t *testing.T) {
	tok := t5(t)
	words := strings.Fields("the quiet tree carries the small river and the bright king reads the cold stone")
	var b strings.Builder
	for i := 0; b.Len() < 20<<20; i++ {
		b.WriteString(words[i%len(words)])
		b.WriteByte(' ')
	}
	huge := b.String()
	dir := t.TempDir()
	for _, c := range []struct{ name, content string }{
		{"d.jsonl", mustJSON(t, map[string]string{"source": huge, "target": "a cat"}) + "\n" + mustJSON(t, map[string]string{"source": "a dog", "target": huge}) + "\n"},
		{"d.tsv", "source\ttarget\n" + huge + "\ta cat\na dog\t" + huge + "\n"},
	} {
		p := filepath.Join(dir, c.name)
		os.WriteFile(p, []byte(c.content), 0o644)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		d, err := Load(context.Background(), p, Format{}, tok, Options{MaxSourceLength: 16, MaxTargetLength: 16})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Examples[0].Source) > 1<<20 || len(d.Examples[1].Targets[0]) > 1<<20 {
			t.Errorf("%s: texts kept whole (%d, %d bytes)", c.name, len(d.Examples[0].Source), len(d.Examples[1].Targets[0]))
		}
		full, err := tok.Source.Encode(strings.Join(words, " ") + " " + strings.Join(words, " "))
		if err != nil {
			t.Fatal(err)
		}
		want := append(slices.Clone(full[:15]), full[len(full)-1]) // 15 tokens and </s>
		got := make([]int, len(d.Source[0]))
		for i, v := range d.Source[0] {
			got[i] = int(v)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: source ids %v, want %v", c.name, got, want)
		}
		t.Logf("%s: %d MB allocated in all", c.name, (after.TotalAlloc-before.TotalAlloc)>>20)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 4*uint64(len(huge)) {
			t.Errorf("%s: reading two records of %d MB allocated %d MB", c.name, len(huge)>>20, grew>>20)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
