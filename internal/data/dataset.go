package data

import (
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/tokenize"
)

// Options control tokenization (as HF's preprocess function of the
// run_translation / run_summarization examples does it).
type Options struct {
	SourcePrefix    string // prepended to every source, e.g. "translate English to Romanian: "
	MaxSourceLength int    // 0: no truncation
	MaxTargetLength int    // 0: no truncation
	SkipBad         bool   // skip bad records instead of failing; see Dataset.Skipped
	// MaxExamples keeps the first that many examples of the file (HF
	// scripts' max_train_samples etc.: dataset.select(range(n)) before
	// tokenization); 0: all.
	MaxExamples int
	Workers     int // tokenization goroutines; 0: GOMAXPROCS
	// CacheDir, when set, keeps the tokenized dataset on disk under a key
	// made of the file's content hash, the tokenizer's fingerprint and these
	// options; a later load with the same key skips tokenization.
	CacheDir string
}

// Dataset is a tokenized dataset held in memory.
type Dataset struct {
	File     string
	Examples []Example
	Source   [][]int32 // input_ids per example (special tokens included)
	Labels   [][]int32 // target ids per example (nil when the example has no target)
	Skipped  []*RecordError
	// FromCache says the token ids were read from the cache.
	FromCache bool
}

// NewDataset holds already tokenized examples: source ids and label ids
// (nil where an example has no target), in dataset order.
func NewDataset(source, labels [][]int32) *Dataset {
	d := &Dataset{Source: source, Labels: labels, Examples: make([]Example, len(source))}
	for i := range d.Examples {
		d.Examples[i].Index = i
	}
	return d
}

// Len is the number of examples.
func (d *Dataset) Len() int { return len(d.Examples) }

// Load reads and tokenizes a whole file.
func Load(ctx context.Context, path string, format Format, tok *tokenize.Pair, opt Options) (*Dataset, error) {
	if tok == nil || tok.Source == nil || tok.Target == nil {
		return nil, fmt.Errorf("data.Load: no tokenizer")
	}
	var key string
	if opt.CacheDir != "" {
		var err error
		if key, err = cacheKey(path, format, tok, opt); err != nil {
			return nil, err
		}
		if d, err := readCache(filepath.Join(opt.CacheDir, key+".gob")); err == nil {
			d.File = path
			return d, nil
		}
	}
	exs, skipped, err := readFirst(path, format, opt.SkipBad, opt.MaxSourceLength, opt.MaxTargetLength, opt.MaxExamples)
	if err != nil {
		return nil, err
	}
	if len(exs) == 0 {
		return nil, fileError(fmt.Errorf("%s: no examples (%d bad records skipped); check the file and the source/target field names", path, len(skipped)))
	}
	d := &Dataset{File: path, Examples: exs, Skipped: skipped}
	if err := d.encode(ctx, tok, opt); err != nil {
		return nil, err
	}
	if opt.CacheDir != "" {
		if err := writeCache(opt.CacheDir, key, d); err != nil {
			return nil, fmt.Errorf("writing the tokenized cache: %w", err)
		}
	}
	return d, nil
}

// encode tokenizes sources and first targets in parallel.
func (d *Dataset) encode(ctx context.Context, tok *tokenize.Pair, opt Options) error {
	srcs := make([]string, len(d.Examples))
	tgts := make([]string, len(d.Examples))
	for i, ex := range d.Examples {
		srcs[i] = opt.SourcePrefix + ex.Source
		if len(ex.Targets) > 0 {
			tgts[i] = ex.Targets[0]
		}
	}
	sIDs, sErrs := tok.Source.EncodeBatchWith(ctx, srcs, tokenize.EncodeOptions{MaxLength: opt.MaxSourceLength}, opt.Workers)
	tIDs, tErrs := tok.Target.EncodeBatchWith(ctx, tgts, tokenize.EncodeOptions{MaxLength: opt.MaxTargetLength}, opt.Workers)
	d.Source = make([][]int32, len(srcs))
	d.Labels = make([][]int32, len(srcs))
	for i, ex := range d.Examples {
		for _, e := range []struct {
			err   error
			field string
		}{{sErrs[i], "source"}, {tErrs[i], "target"}} {
			if e.err != nil {
				if errors.Is(e.err, context.Canceled) || errors.Is(e.err, context.DeadlineExceeded) {
					return e.err
				}
				return &RecordError{File: d.File, Line: ex.Line, Field: e.field, Msg: e.err.Error()}
			}
		}
		d.Source[i] = to32(sIDs[i])
		if len(ex.Targets) > 0 {
			d.Labels[i] = to32(tIDs[i])
		}
	}
	return nil
}

func to32(ids []int) []int32 {
	out := make([]int32, len(ids))
	for i, v := range ids {
		out[i] = int32(v)
	}
	return out
}

const cacheVersion = "ortrain-data-cache-v2" // v2: texts cut by tokenize.CutText

func cacheKey(path string, format Format, tok *tokenize.Pair, opt Options) (string, error) {
	files, err := DataFiles(path, format)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%+v\x00%q\x00%d\x00%d\x00%v\x00%d\x00", cacheVersion, tok.Fingerprint(), format,
		opt.SourcePrefix, opt.MaxSourceLength, opt.MaxTargetLength, opt.SkipBad, opt.MaxExamples)
	for _, p := range files {
		f, err := modelfile.Open(p)
		if err != nil {
			return "", fileError(err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "\x00%d\x00", f.Size)
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

type cached struct {
	Version  string
	Examples []Example
	Source   [][]int32
	Labels   [][]int32
	Skipped  []*RecordError
}

func readCache(path string) (*Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var c cached
	if err := gob.NewDecoder(f).Decode(&c); err != nil {
		return nil, err
	}
	if c.Version != cacheVersion || len(c.Source) != len(c.Examples) || len(c.Labels) != len(c.Examples) {
		return nil, fmt.Errorf("%s: stale or damaged cache", path)
	}
	return &Dataset{Examples: c.Examples, Source: c.Source, Labels: c.Labels, Skipped: c.Skipped, FromCache: true}, nil
}

// writeCache writes atomically (temp file + rename), so a crash never
// leaves a half-written cache that a later run would trust.
func writeCache(dir, key string, d *Dataset) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, key+".*.tmp")
	if err != nil {
		return err
	}
	err = gob.NewEncoder(tmp).Encode(cached{Version: cacheVersion, Examples: d.Examples, Source: d.Source, Labels: d.Labels, Skipped: d.Skipped})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, key+".gob"))
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
