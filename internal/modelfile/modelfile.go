// Package modelfile is the one rule for every file ortrain opens on a
// model's behalf:
//
//   - a file a model folder holds, or one a model names (external data), is
//     resolved inside that folder: links are followed, then the real path
//     must lie in the folder or in the folder where the folder's ONNX model
//     really lives (ONNX Runtime's rule for external data), or, for a
//     snapshot folder of the Hugging Face cache, in its blobs/ folder (the
//     cache stores every file of <repo>/snapshots/<rev>/ as a link into
//     <repo>/blobs/);
//   - only regular files are opened (a FIFO or a device never blocks or
//     streams forever), and opening never blocks;
//   - sizes come from the open file, and every read is checked against them
//     before anything is allocated.
//
// Files the user names directly (a flag) may live anywhere, but are still
// regular files read with sizes checked (Open, ReadFile). Every error is of
// kind fault.Input.
package modelfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ortrain/ortrain/internal/fault"
)

// Folder is a model folder: where names are joined, and the real folders
// they may resolve into.
type Folder struct {
	dir   string
	roots []string
}

// NewFolder is the folder dir. Names may resolve into dir itself (links
// followed) and into the real folder of each of its top-level ONNX files
// and of each anchor given (a model file loaded from elsewhere).
func NewFolder(dir string, anchors ...string) (*Folder, error) {
	if dir == "" {
		dir = "."
	}
	real, err := realPath(dir)
	if err != nil {
		return nil, fault.Inputf("model folder %s: %w", dir, err)
	}
	if st, err := os.Stat(real); err != nil || !st.IsDir() {
		return nil, fault.Inputf("%s is not a folder", dir)
	}
	f := &Folder{dir: dir, roots: []string{real}}
	// The Hugging Face cache: <repo>/snapshots/<revision>/ holds links into
	// <repo>/blobs/.
	if parent := filepath.Dir(real); filepath.Base(parent) == "snapshots" {
		f.addRoot(filepath.Join(filepath.Dir(parent), "blobs"))
	}
	onnxFiles, _ := filepath.Glob(filepath.Join(dir, "*.onnx"))
	for _, a := range append(onnxFiles, anchors...) {
		if r, err := realPath(a); err == nil {
			f.addRoot(filepath.Dir(r))
		}
	}
	return f, nil
}

func (f *Folder) addRoot(r string) {
	for _, have := range f.roots {
		if have == r {
			return
		}
	}
	f.roots = append(f.roots, r)
}

// Dir is the folder as given.
func (f *Folder) Dir() string { return f.dir }

func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

// within reports whether p lies in root (or is root).
func within(p, root string) bool {
	if p == root {
		return true
	}
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// ErrOutside marks a name that resolves outside its model folder.
var ErrOutside = fault.New(fault.Input, "resolves outside the model folder")

// Resolve checks a name given relative to the folder and returns the real
// path it leads to. The name must be relative and may not climb out with
// "..". A name that does not exist gives an error wrapping fs.ErrNotExist.
func (f *Folder) Resolve(name string) (string, error) {
	if name == "" {
		return "", fault.Inputf("%s: empty file name", f.dir)
	}
	if filepath.IsAbs(name) || strings.HasPrefix(name, "/") {
		return "", fault.Inputf("%s: file name %q is absolute; a model names its files relative to its folder", f.dir, name)
	}
	for _, part := range strings.Split(filepath.ToSlash(name), "/") {
		if part == ".." {
			return "", fault.Inputf("%s: file name %q leaves the model folder", f.dir, name)
		}
	}
	joined := filepath.Join(f.dir, filepath.FromSlash(name))
	real, err := realPath(joined)
	if err != nil {
		return "", fault.Mark(fault.Input, err)
	}
	for _, r := range f.roots {
		if within(real, r) {
			return real, nil
		}
	}
	return "", fmt.Errorf("%s: %w: it leads to %s, which is neither in %s nor in the folder its ONNX model lives in; copy the file into the model folder if it is meant to be read",
		joined, ErrOutside, real, f.roots[0])
}

// Open resolves name inside the folder and opens it as a regular file.
func (f *Folder) Open(name string) (*File, error) {
	real, err := f.Resolve(name)
	if err != nil {
		return nil, err
	}
	file, err := openRegular(real, filepath.Join(f.dir, name))
	if err != nil {
		return nil, err
	}
	return file, nil
}

// ReadFile resolves name inside the folder and reads it whole; a file
// larger than limit bytes (limit > 0) is refused before it is read.
func (f *Folder) ReadFile(name string, limit int64) ([]byte, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return file.readAll(limit)
}

// Exists reports whether name is present in the folder (whatever it is).
func (f *Folder) Exists(name string) bool {
	_, err := os.Stat(filepath.Join(f.dir, name))
	return err == nil
}

// File is an open regular file and its size at opening.
type File struct {
	*os.File
	// Size is the file's size when it was opened.
	Size int64
	// Name is the path as the user knows it, for messages.
	Name string
}

// Open opens a path the user gave as a regular file (links followed,
// anywhere): never a FIFO, a device or a folder.
func Open(path string) (*File, error) {
	return openRegular(path, path)
}

// ReadFile reads a file the user gave whole, refusing it before reading if
// it is larger than limit bytes (limit > 0) or not a regular file.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.readAll(limit)
}

// openRegular opens p without blocking (a FIFO would wait for a writer)
// and refuses anything but a regular file. shown names it in messages.
func openRegular(p, shown string) (*File, error) {
	fd, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			return nil, fault.Mark(fault.Input, err)
		}
		return nil, fault.Inputf("open %s: %w", shown, err)
	}
	st, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil, fault.Inputf("%s: %w", shown, err)
	}
	if !st.Mode().IsRegular() {
		fd.Close()
		kind := "not a regular file"
		switch {
		case st.IsDir():
			kind = "a folder, not a file"
		case st.Mode()&fs.ModeNamedPipe != 0:
			kind = "a named pipe (FIFO), not a regular file"
		case st.Mode()&fs.ModeDevice != 0:
			kind = "a device, not a regular file"
		case st.Mode()&fs.ModeSocket != 0:
			kind = "a socket, not a regular file"
		}
		return nil, fault.Inputf("%s is %s; ortrain reads model and data files only from regular files", shown, kind)
	}
	// Reads of a regular file ignore O_NONBLOCK; clear it all the same.
	_ = syscall.SetNonblock(int(fd.Fd()), false)
	return &File{File: fd, Size: st.Size(), Name: shown}, nil
}

// readAll reads the whole file, allocating no more than its size.
func (f *File) readAll(limit int64) ([]byte, error) {
	if limit > 0 && f.Size > limit {
		return nil, fault.Inputf("%s is %d bytes, more than the %d this kind of file may have", f.Name, f.Size, limit)
	}
	buf := make([]byte, f.Size)
	n, err := io.ReadFull(f.File, buf)
	if err != nil {
		return nil, fault.Inputf("read %s: %w (the file changed while it was read?)", f.Name, err)
	}
	return buf[:n], nil
}

// Range reads length bytes at offset, after checking that the range lies
// within the file, so a claimed length never allocates more than the file
// holds.
func (f *File) Range(offset, length int64) ([]byte, error) {
	if offset < 0 || length < 0 || offset > f.Size || length > f.Size-offset {
		return nil, fault.Inputf("%s: bytes [%d, +%d) lie beyond its end (%d bytes); the file is truncated or belongs to another model",
			f.Name, offset, length, f.Size)
	}
	buf := make([]byte, length)
	if length == 0 {
		return buf, nil
	}
	if _, err := f.File.ReadAt(buf, offset); err != nil {
		return nil, fault.Inputf("read %d bytes at offset %d of %s: %w", length, offset, f.Name, err)
	}
	return buf, nil
}

// ReadIn reads the file name of the folder dir by the folder rule (see
// NewFolder for anchors): the one-call form for a single file.
func ReadIn(dir, name string, limit int64, anchors ...string) ([]byte, error) {
	f, err := NewFolder(dir, anchors...)
	if err != nil {
		return nil, err
	}
	return f.ReadFile(name, limit)
}

// CheckIn checks, without reading it, that the file name of the folder dir
// resolves inside it and is a regular file.
func CheckIn(dir, name string, anchors ...string) error {
	f, err := NewFolder(dir, anchors...)
	if err != nil {
		return err
	}
	file, err := f.Open(name)
	if err != nil {
		return err
	}
	return file.Close()
}

// CheckOutput refuses an output path that is one of the inputs, holds one
// (writing there could overwrite it: artifacts into the model folder
// replace its model.safetensors), or lies inside an input folder. Paths are
// compared after links are resolved; out need not exist yet. Errors are
// bad settings (fault.Settings) naming both paths.
func CheckOutput(flag, out string, inputs map[string]string) error {
	o, err := resolvePartial(out)
	if err != nil {
		return nil // an unusable output path is reported when it is written
	}
	for name, in := range inputs {
		if in == "" {
			continue
		}
		i, err := resolvePartial(in)
		if err != nil {
			continue
		}
		switch {
		case o == i:
			return fault.Settingsf("%s %s is the input %s; write the output somewhere else", flag, out, name)
		case within(i, o):
			return fault.Settingsf("%s %s holds the input %s (%s), which writing there could overwrite; choose an output folder outside the inputs", flag, out, name, in)
		case within(o, i):
			return fault.Settingsf("%s %s lies inside the input %s (%s); choose an output folder outside the inputs", flag, out, name, in)
		}
	}
	return nil
}

// resolvePartial is the real path of p, resolving links in the part that
// exists and appending the rest.
func resolvePartial(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; cur = filepath.Dir(cur) {
		if real, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(real, rest), nil
		}
		if cur == filepath.Dir(cur) {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
	}
}

// SamePath reports whether two paths name the same place once links are
// resolved (either may not exist yet).
func SamePath(a, b string) bool {
	ra, err1 := resolvePartial(a)
	rb, err2 := resolvePartial(b)
	return err1 == nil && err2 == nil && ra == rb
}
