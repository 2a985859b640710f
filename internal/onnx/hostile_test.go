package onnx

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// externalModel saves smallModel with its initializers in data.bin beside
// model.onnx, in dir.
func externalModel(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "model.onnx")
	if err := Save(smallModel(t), path, SaveOptions{ExternalData: true, ExternalDataFile: "data.bin", SizeThreshold: -1}); err != nil {
		t.Fatal(err)
	}
	return path
}

// A data file that is a link to a file outside the model folder is not
// read: the model would otherwise copy that file into artifacts and saved
// models. (ONNX Runtime refuses such a model too.)
func TestExternalDataLinkOutsideFolderRefused(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "model")
	os.MkdirAll(dir, 0o755)
	path := externalModel(t, dir)
	secret := filepath.Join(root, "secret.bin")
	if err := os.Rename(filepath.Join(dir, "data.bin"), secret); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "data.bin")); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "outside the model folder") || !strings.Contains(err.Error(), "secret.bin") {
		t.Fatalf("a link out of the folder: %v", err)
	}
	// The same through a linked sub-folder.
	os.Remove(filepath.Join(dir, "data.bin"))
	os.MkdirAll(filepath.Join(root, "elsewhere"), 0o755)
	os.Rename(secret, filepath.Join(root, "elsewhere", "data.bin"))
	if err := os.Symlink(filepath.Join(root, "elsewhere"), filepath.Join(dir, "sub")); err != nil {
		t.Fatal(err)
	}
	lazy, err := LoadWith(path, LoadOptions{KeepExternal: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, init := range lazy.Graph.Initializer {
		for _, e := range init.ExternalData {
			if e.GetKey() == "location" {
				e.Value = proto.String("sub/data.bin")
			}
		}
	}
	if err := ResolveExternalData(lazy, dir); err == nil || !strings.Contains(err.Error(), "outside the model folder") {
		t.Fatalf("a linked sub-folder out of the folder: %v", err)
	}
}

// The Hugging Face cache stores a snapshot's files as links into its blobs/
// folder: links are followed, and a model whose files all live in blobs/
// loads (ONNX Runtime's rule: the model's folder or its real folder).
func TestExternalDataHFCacheLinksAccepted(t *testing.T) {
	root := t.TempDir()
	blobs := filepath.Join(root, "blobs")
	snap := filepath.Join(root, "snapshots", "abc123")
	os.MkdirAll(blobs, 0o755)
	os.MkdirAll(snap, 0o755)
	path := externalModel(t, blobs)
	want, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Rename(path, filepath.Join(blobs, "guid1"))
	os.Rename(filepath.Join(blobs, "data.bin"), filepath.Join(blobs, "guid2"))
	os.Symlink("../../blobs/guid1", filepath.Join(snap, "model.onnx"))
	os.Symlink("../../blobs/guid2", filepath.Join(snap, "data.bin"))
	got, err := Load(filepath.Join(snap, "model.onnx"))
	if err != nil {
		t.Fatalf("HF cache layout: %v", err)
	}
	if !proto.Equal(got, want) {
		t.Fatal("HF cache layout loads other values")
	}
}

// A FIFO named as external data is refused at once instead of waiting
// forever for a writer (SIGINT could not end that wait).
func TestExternalDataFIFORefusedWithoutBlocking(t *testing.T) {
	dir := t.TempDir()
	path := externalModel(t, dir)
	os.Remove(filepath.Join(dir, "data.bin"))
	if err := syscall.Mkfifo(filepath.Join(dir, "data.bin"), 0o644); err != nil {
		t.Skipf("no FIFOs here: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := Load(path); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "named pipe") {
			t.Fatalf("FIFO: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("loading a model whose data file is a FIFO blocks")
	}
	// A folder is refused as well.
	os.Remove(filepath.Join(dir, "data.bin"))
	os.Mkdir(filepath.Join(dir, "data.bin"), 0o755)
	if _, err := Load(path); !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "folder") {
		t.Fatalf("folder: %v", err)
	}
}

// A tensor whose dims claim far more elements than its data holds is an
// error before anything of the claimed size is allocated.
func TestTensorEnormousDeclaredSizeRefused(t *testing.T) {
	for _, dims := range [][]int64{{1 << 40}, {1 << 31, 1 << 31, 1 << 31}, {-1}} {
		tp := &onnxpb.TensorProto{Name: proto.String("w"), DataType: proto.Int32(int32(Float32)), Dims: dims, FloatData: []float32{1, 2}}
		if _, err := Float32s(tp); err == nil {
			t.Errorf("dims %v with 2 values: no error", dims)
		}
		tp = &onnxpb.TensorProto{Name: proto.String("w"), DataType: proto.Int32(int32(onnxpb.TensorProto_INT4)), Dims: dims, Int32Data: []int32{1}}
		if _, err := RawBytes(tp); err == nil {
			t.Errorf("int4 dims %v with 1 byte: no error", dims)
		}
	}
	if n := NumElements([]int64{1 << 32, 1 << 32}); n != -1 {
		t.Errorf("overflowing NumElements = %d, want -1", n)
	}
	if n := NumElements([]int64{1 << 62, 1 << 62, 0}); n != 0 {
		t.Errorf("NumElements with a zero dim = %d, want 0", n)
	}
}

// External data ranges are checked against the file without overflow: a
// huge offset+length (a STRING tensor skips the dims check) is refused
// before allocation.
func TestExternalDataHugeLengthRefused(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "d.bin"), make([]byte, 64), 0o644)
	for _, c := range []struct {
		dt             DType
		offset, length string
	}{
		{String, "4611686018427387904", "4611686018427387904"},
		{String, "8", "9223372036854775807"},
		{Float32, "0", "9223372036854775800"},
	} {
		tp := &onnxpb.TensorProto{Name: proto.String("s"), DataType: proto.Int32(int32(c.dt)), Dims: []int64{2},
			DataLocation: onnxpb.TensorProto_EXTERNAL.Enum(),
			ExternalData: []*onnxpb.StringStringEntryProto{
				{Key: proto.String("location"), Value: proto.String("d.bin")},
				{Key: proto.String("offset"), Value: proto.String(c.offset)},
				{Key: proto.String("length"), Value: proto.String(c.length)},
			}}
		m := &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: &onnxpb.GraphProto{Initializer: []*onnxpb.TensorProto{tp}}}
		err := ResolveExternalData(m, dir)
		if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "beyond the end") {
			t.Errorf("%v offset %s length %s: %v", DTypeName(c.dt), c.offset, c.length, err)
		}
	}
}
