package modelfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
)

func write(t *testing.T, p, s string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFolderResolve(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "model")
	write(t, filepath.Join(dir, "tokenizer.json"), "{}")
	write(t, filepath.Join(dir, "sub", "a.bin"), "a")
	write(t, filepath.Join(root, "secret"), "s")
	os.Symlink(filepath.Join(root, "secret"), filepath.Join(dir, "out"))
	os.Symlink("sub/a.bin", filepath.Join(dir, "in"))
	os.Symlink(root, filepath.Join(dir, "up"))
	f, err := NewFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"tokenizer.json": "", "sub/a.bin": "", "in": "",
		"out": "outside the model folder", "up/secret": "outside the model folder",
		"../secret": "leaves the model folder", "/etc/passwd": "absolute", "": "empty",
	} {
		_, err := f.Resolve(name)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, fault.Input)) {
			t.Errorf("%q: %v, want %q", name, err, want)
		}
	}
	if _, err := f.Resolve("absent"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absent: %v", err)
	}
	b, err := f.ReadFile("in", 0)
	if err != nil || string(b) != "a" {
		t.Fatalf("%q %v", b, err)
	}
	if _, err := f.ReadFile("tokenizer.json", 1); err == nil || !strings.Contains(err.Error(), "more than the 1") {
		t.Fatalf("limit: %v", err)
	}
}

// A folder whose ONNX model is a link (the Hugging Face cache) may hold
// links into the folder the model really lives in.
func TestFolderAnchoredAtTheRealModelFolder(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "blobs", "m"), "model")
	write(t, filepath.Join(root, "blobs", "t"), "{}")
	write(t, filepath.Join(root, "other", "x"), "x")
	snap := filepath.Join(root, "snapshots", "r1")
	os.MkdirAll(snap, 0o755)
	os.Symlink("../../blobs/m", filepath.Join(snap, "model.onnx"))
	os.Symlink("../../blobs/t", filepath.Join(snap, "tokenizer.json"))
	os.Symlink("../../other/x", filepath.Join(snap, "x"))
	f, err := NewFolder(snap)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFile("tokenizer.json", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFile("x", 0); !errors.Is(err, ErrOutside) {
		t.Fatalf("x: %v", err)
	}
}

func TestOpenRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	for p, want := range map[string]string{fifo: "named pipe", dir: "folder", "/dev/zero": "device"} {
		if _, err := ReadFile(p, 0); err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, fault.Input) {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestRangeCheckedBeforeAllocation(t *testing.T) {
	p := filepath.Join(t.TempDir(), "d")
	write(t, p, "0123456789")
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b, err := f.Range(2, 3); err != nil || string(b) != "234" {
		t.Fatalf("%q %v", b, err)
	}
	for _, r := range [][2]int64{{0, 11}, {11, 0}, {1 << 62, 1 << 62}, {5, 1<<63 - 1}, {-1, 2}} {
		if _, err := f.Range(r[0], r[1]); err == nil {
			t.Errorf("range %v: no error", r)
		}
	}
}

// A snapshot of the Hugging Face cache without any ONNX file (a tokenizer
// repository) still reads its links into blobs/.
func TestFolderHFCacheSnapshotWithoutModel(t *testing.T) {
	root := t.TempDir()
	repo := filepath.Join(root, "models--org--tok")
	write(t, filepath.Join(repo, "blobs", "abc"), "{}")
	snap := filepath.Join(repo, "snapshots", "r1")
	os.MkdirAll(snap, 0o755)
	os.Symlink("../../blobs/abc", filepath.Join(snap, "tokenizer.json"))
	os.Symlink(filepath.Join(root, "x"), filepath.Join(snap, "x"))
	write(t, filepath.Join(root, "x"), "x")
	f, err := NewFolder(snap)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFile("tokenizer.json", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadFile("x", 0); !errors.Is(err, ErrOutside) {
		t.Fatalf("x: %v", err)
	}
}
