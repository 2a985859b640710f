package tokenize

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/internal/strictjson"
)

// folderFiles are the files a tokenizer folder may hold that Load reads.
var folderFiles = []string{"tokenizer.json", "tokenizer_config.json", "config.json", "source.spm", "target.spm", "vocab.json", "sentencepiece.bpe.model"}

// checkFolder applies modelfile's rule to the files of a tokenizer (or
// model) folder that Load may read, before any is read: each present one
// resolves inside the folder (links followed, then checked) and is a
// regular file. path is what Load was given: the folder, or a file the
// user named directly (read wherever it lies) in the folder to check.
func checkFolder(path string, isDir bool) error {
	dir, skip := path, ""
	if !isDir {
		dir, skip = filepath.Dir(path), filepath.Base(path)
	}
	folder, err := modelfile.NewFolder(dir)
	if err != nil {
		return err
	}
	for _, name := range folderFiles {
		if name == skip {
			continue
		}
		f, err := folder.Open(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("tokenizer: %w", err)
		}
		f.Close()
	}
	return nil
}

// readFile reads a file the user gave (or one checkFolder passed): a
// regular file, read within its size.
func readFile(path string) ([]byte, error) {
	return modelfile.ReadFile(path, 0)
}

// checkJSONDepth refuses JSON nested deeper than any tokenizer needs
// (serde_json, behind HF's tokenizers, stops at 128 too) before it is
// decoded: each level costs a decoding pass over what it holds.
func checkJSONDepth(data []byte) error { return strictjson.CheckDepth(data) }
