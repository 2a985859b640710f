package data

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzRecords reads arbitrary bytes as a JSONL (flat and translation
// records), CSV and TSV data file: every record is an example or a bad
// record naming its line, never a panic. Run by scripts/fuzz.sh.
func FuzzRecords(f *testing.F) {
	f.Add([]byte("{\"source\": \"a cat\", \"target\": \"a dog\"}\n{\"source\": [\"x\", \"y\"], \"target\": [\"z\", \"w\"]}\n"))
	f.Add([]byte("{\"translation\": {\"en\": \"a cat\", \"ro\": \"o pisică\"}}\n\n{not json\n"))
	f.Add([]byte("source,target\n\"a, b\",c\n\"unterminated,quote\n"))
	f.Add([]byte("\ufeffsource\ttarget\na\tb\r\nc\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range []struct {
			name   string
			format Format
		}{
			{"d.jsonl", Format{}},
			{"t.jsonl", Format{SourceLang: "en", TargetLang: "ro"}},
			{"d.csv", Format{AllowEmptyTarget: true}},
			{"d.tsv", Format{}},
		} {
			p := filepath.Join(dir, c.name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			exs, _, err := readAll(p, c.format, true, 8, 8)
			if err == nil {
				for _, ex := range exs {
					if ex.Source == "" {
						t.Fatalf("%s: an example without source: %+v", c.name, ex)
					}
				}
			}
		}
	})
}

// FuzzColumnar reads arbitrary bytes as a Parquet file and as an Arrow IPC
// file (seeded with the fixtures datasets and pyarrow wrote): an error or
// examples, never a panic or an allocation the file merely claims. Run by
// scripts/fuzz.sh.
func FuzzColumnar(f *testing.F) {
	for _, name := range []string{"tatoeba-dev-pyarrow.parquet", "scitldr-dev.parquet", "tatoeba-dev-disk/data-00000-of-00003.arrow"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "dataformats", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, c := range []struct {
			name   string
			format Format
		}{
			{"d.parquet", Format{SourceLang: "en", TargetLang: "ro"}},
			{"l.parquet", Format{}},
			{"d.arrow", Format{SourceLang: "en", TargetLang: "ro"}},
		} {
			p := filepath.Join(dir, c.name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			readAll(p, c.format, true, 8, 8)
		}
	})
}
