package data

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/testenv"
)

// dataformats is a file of testdata/dataformats (written by
// scripts/fixtures/make_dataformats.py with the datasets library and pyarrow).
func dataformats(t *testing.T, name string) string {
	return testenv.Testdata(t, "dataformats", name)
}

// batchBytes serializes every batch of an epoch: ids, masks, labels,
// references and dataset indices, in order.
func batchBytes(t *testing.T, d *Dataset, order Order) []byte {
	t.Helper()
	var buf bytes.Buffer
	r := d.Epoch(order, Collator{PadID: 0}, 0, 0)
	for r.Next(t.Context()) {
		b := r.Batch()
		fmt.Fprintf(&buf, "batch %d %d %d\n", b.Rows, b.SourceLen, b.TargetLen)
		for _, a := range [][]int64{b.InputIDs, b.AttentionMask, b.DecoderInputIDs, b.Labels, b.DecoderAttentionMask} {
			binary.Write(&buf, binary.LittleEndian, int64(len(a)))
			binary.Write(&buf, binary.LittleEndian, a)
		}
		for i, refs := range b.References {
			fmt.Fprintf(&buf, "%d %q\n", b.Indices[i], refs)
		}
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	return buf.Bytes()
}

// TestFormatsGiveJSONLBatches: Parquet files (as datasets and pyarrow write
// them), save_to_disk folders and parallel text files give the same
// examples and the same batches, byte for byte, as the equivalent JSONL,
// shuffled and in file order, with truncation.
func TestFormatsGiveJSONLBatches(t *testing.T) {
	tok := t5(t)
	translation := Format{SourceLang: "en", TargetLang: "ro"}
	parallel := testenv.RealData(t, "translation", "tatoeba-en-ro")
	cases := []struct {
		name, jsonl, other string
		format             Format
		opt                Options
		rows               int
	}{
		{"parquet (datasets)", "tatoeba-dev.jsonl", dataformats(t, "tatoeba-dev.parquet"), translation,
			Options{SourcePrefix: "translate English to Romanian: "}, 360},
		{"parquet (pyarrow: zstd, large_string, 64-row groups)", "tatoeba-dev.jsonl", dataformats(t, "tatoeba-dev-pyarrow.parquet"), translation,
			Options{MaxSourceLength: 12, MaxTargetLength: 9}, 360},
		{"save_to_disk (3 shards)", "tatoeba-dev.jsonl", dataformats(t, "tatoeba-dev-disk"), translation, Options{}, 360},
		{"one Arrow file", "tatoeba-dev.jsonl", filepath.Join(dataformats(t, "tatoeba-dev-disk"), "data-00001-of-00003.arrow"), translation, Options{}, -1},
		{"parallel text (prefix)", "tatoeba-dev.jsonl", filepath.Join(parallel, "dev"), translation, Options{MaxSourceLength: 16}, 360},
		{"parallel text (source file)", "tatoeba-dev.jsonl", filepath.Join(parallel, "dev.en"), translation, Options{}, 360},
		{"parquet lists (datasets)", "scitldr-dev.jsonl", dataformats(t, "scitldr-dev.parquet"), Format{},
			Options{SourcePrefix: "summarize: ", MaxSourceLength: 256, MaxTargetLength: 48}, 60},
		{"save_to_disk lists (2 shards)", "scitldr-dev.jsonl", dataformats(t, "scitldr-dev-disk"), Format{},
			Options{MaxSourceLength: 128}, 60},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			other, err := Load(t.Context(), c.other, c.format, tok, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Load(t.Context(), dataformats(t, c.jsonl), c.format, tok, c.opt)
			if err != nil {
				t.Fatal(err)
			}
			if c.rows < 0 {
				// One shard of the save_to_disk folder: the matching
				// slice of the JSONL, found by its first example.
				start := slices.IndexFunc(want.Examples, func(e Example) bool { return e.Source == other.Examples[0].Source })
				if start < 0 || start+other.Len() > want.Len() {
					t.Fatalf("the shard's first example is not in the JSONL")
				}
				sub := NewDataset(want.Source[start:start+other.Len()], want.Labels[start:start+other.Len()])
				sub.Examples = append([]Example(nil), want.Examples[start:start+other.Len()]...)
				for i := range sub.Examples {
					sub.Examples[i].Index = i
				}
				want = sub
			} else if other.Len() != c.rows || want.Len() != c.rows {
				t.Fatalf("%d and %d examples, want %d", other.Len(), want.Len(), c.rows)
			}
			if len(other.Skipped) != 0 {
				t.Fatalf("skipped %v", other.Skipped)
			}
			for i := range want.Examples {
				g, w := other.Examples[i], want.Examples[i]
				if g.Index != w.Index || g.Source != w.Source || !slices.Equal(g.Targets, w.Targets) {
					t.Fatalf("example %d = %+.80v, want %+.80v", i, g, w)
				}
			}
			for _, order := range []Order{{BatchSize: 16}, {BatchSize: 7, Shuffle: true, Seed: 42}} {
				a, b := batchBytes(t, other, order), batchBytes(t, want, order)
				if !bytes.Equal(a, b) {
					t.Fatalf("%+v: batches differ (%d vs %d bytes)", order, len(a), len(b))
				}
				t.Logf("%+v: %d bytes of batches, sha256 %x", order, len(a), sha256.Sum256(a))
			}
		})
	}
}

// TestColumnarStreams: Stream over Parquet gives the batches of the JSONL
// stream, and a save_to_disk folder keys the tokenization cache by all its
// Arrow files.
func TestColumnarStreams(t *testing.T) {
	tok := t5(t)
	f := Format{SourceLang: "en", TargetLang: "ro"}
	col := Collator{PadID: 0}
	a, err := OpenStream(dataformats(t, "tatoeba-dev-pyarrow.parquet"), f, tok, Options{}, col, 5, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenStream(dataformats(t, "tatoeba-dev.jsonl"), f, tok, Options{}, col, 5, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	n := 0
	for b.Next(t.Context()) {
		if !a.Next(t.Context()) {
			t.Fatalf("parquet stream ended at batch %d: %v", n, a.Err())
		}
		x, y := a.Batch(), b.Batch()
		if !slices.Equal(x.InputIDs, y.InputIDs) || !slices.Equal(x.Labels, y.Labels) || !slices.Equal(x.Indices, y.Indices) {
			t.Fatalf("batch %d differs", n)
		}
		n++
	}
	if a.Next(t.Context()) || a.Err() != nil || n != 360/5-4 {
		t.Errorf("after %d batches: extra batch or error %v", n, a.Err())
	}

	files, err := DataFiles(dataformats(t, "tatoeba-dev-disk"), f)
	if err != nil || len(files) != 3 || !strings.HasSuffix(files[2], "data-00002-of-00003.arrow") {
		t.Errorf("DataFiles = %v, %v", files, err)
	}
	cache := t.TempDir()
	d1, err := Load(t.Context(), dataformats(t, "tatoeba-dev-disk"), f, tok, Options{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := Load(t.Context(), dataformats(t, "tatoeba-dev-disk"), f, tok, Options{CacheDir: cache})
	if err != nil || d1.FromCache || !d2.FromCache || d2.Len() != 360 {
		t.Errorf("cache: first %v, second %v, %v", d1.FromCache, d2 != nil && d2.FromCache, err)
	}
}

// copyTree copies a fixture folder, to damage the copy.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestColumnarErrors: wrong columns, a DatasetDict folder, unequal parallel
// files and damaged files are input errors naming the file and what to do;
// never a panic.
func TestColumnarErrors(t *testing.T) {
	translation := Format{SourceLang: "en", TargetLang: "ro"}
	disk := copyTree(t, dataformats(t, "tatoeba-dev-disk"))
	pq, err := os.ReadFile(dataformats(t, "tatoeba-dev-pyarrow.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	arrowFile, err := os.ReadFile(filepath.Join(disk, "data-00002-of-00003.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	put := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The first record batch's message (after the schema's) claiming a
	// body of 2 GiB.
	huge := slices.Clone(arrowFile)
	schemaLen := int(binary.LittleEndian.Uint32(huge[4:]))
	msg := 8 + schemaLen
	if binary.LittleEndian.Uint32(huge[msg:]) != 0xFFFFFFFF {
		t.Fatal("the fixture's second message has no continuation marker")
	}
	metaLen := int(binary.LittleEndian.Uint32(huge[msg+4:]))
	meta := huge[msg+8 : msg+8+metaLen]
	body, err := bodyLength(meta)
	if err != nil || body <= 0 {
		t.Fatalf("body length %d, %v", body, err)
	}
	var enc [8]byte
	binary.LittleEndian.PutUint64(enc[:], uint64(body))
	at := bytes.Index(meta, enc[:])
	if at < 0 {
		t.Fatal("body length not found in the message")
	}
	binary.LittleEndian.PutUint64(meta[at:], 1<<31)
	flipped := slices.Clone(pq)
	for i := len(flipped) / 3; i < len(flipped)/3+64; i++ {
		flipped[i] ^= 0x5a
	}
	en := put("short.en", []byte("one\ntwo\nthree\n"))
	put("short.ro", []byte("unu\ndoi\n"))
	cases := []struct {
		name, path string
		format     Format
		want       []string
	}{
		{"no such column", dataformats(t, "scitldr-dev.parquet"), Format{SourceField: "document", TargetField: "summary"},
			[]string{"scitldr-dev.parquet", `no column "document"`, "source (list<element: utf8"}},
		{"translation from flat columns", dataformats(t, "scitldr-dev.parquet"), translation, []string{`no column "translation"`, "name the text columns"}},
		{"no such language", dataformats(t, "tatoeba-dev.parquet"), Format{SourceLang: "en", TargetLang: "de"}, []string{`no language "de"`}},
		{"not a string column", dataformats(t, "scitldr-dev.parquet"), Format{SourceField: "source", TargetField: "source_labels"},
			[]string{`column "source_labels" is list<element: int64`, "want a string or a list of strings"}},
		{"DatasetDict", dataformats(t, "dict-disk"), translation, []string{"DatasetDict", "train, validation", filepath.Join("dict-disk", "train")}},
		{"truncated parquet", put("cut.parquet", pq[:len(pq)/2]), translation, []string{"cut.parquet"}},
		{"damaged parquet", put("flipped.parquet", flipped), translation, []string{"flipped.parquet"}},
		{"not parquet", put("text.parquet", []byte("source,target\na,b\n")), translation, []string{"text.parquet", "not a readable Parquet file"}},
		{"truncated arrow", put("cut.arrow", arrowFile[:len(arrowFile)-100]), translation, []string{"cut.arrow"}},
		{"arrow claiming a huge body", put("huge.arrow", huge), translation, []string{"huge.arrow", "claims a body of"}},
		{"unequal parallel files", en, translation, []string{"short.ro has 2 lines but", "short.en has more"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ReadAll(c.path, c.format, false)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, fault.Input) {
				t.Errorf("not an input error: %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// A state.json naming a file outside the folder.
	st := `{"_data_files": [{"filename": "../../etc/passwd"}]}`
	if err := os.WriteFile(filepath.Join(disk, "state.json"), []byte(st), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadAll(disk, translation, false); err == nil || !strings.Contains(err.Error(), "passwd") {
		t.Errorf("a data file outside the folder: %v", err)
	}
}

// TestColumnarMutations reads seeded mutations of the fixtures (bytes
// changed, cut out, repeated) as Parquet and Arrow files: errors or
// examples, never a panic, a hang or an allocation a damaged header claims
// (which once made the Arrow library's IPC schema reader allocate 146 GB).
func TestColumnarMutations(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"tatoeba-dev-pyarrow.parquet", "scitldr-dev.parquet", "tatoeba-dev-disk/data-00000-of-00003.arrow"} {
		orig, err := os.ReadFile(dataformats(t, name))
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for it := range 200 {
			b := slices.Clone(orig)
			switch it % 3 {
			case 0:
				for range 1 + rng.IntN(4) {
					b[rng.IntN(len(b))] = byte(rng.IntN(256))
				}
			case 1:
				i := rng.IntN(len(b))
				j := i + rng.IntN(len(b)-i)
				b = append(b[:i:i], b[j:]...)
			case 2:
				i := rng.IntN(len(b))
				j := i + rng.IntN(min(len(b)-i, 64))
				b = append(b[:j:j], b[i:]...)
			}
			for _, c := range []struct {
				name   string
				format Format
			}{{"d.parquet", Format{SourceLang: "en", TargetLang: "ro"}}, {"l.parquet", Format{}}, {"d.arrow", Format{SourceLang: "en", TargetLang: "ro"}}} {
				p := filepath.Join(dir, c.name)
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				if _, _, err := readAll(p, c.format, true, 8, 8); err != nil && !errors.Is(err, fault.Input) {
					t.Fatalf("%s mutation %d as %s: not an input error: %v", name, it, c.name, err)
				}
			}
		}
	}
}
