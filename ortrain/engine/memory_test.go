package engine

import (
	"math/rand"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/safetensors"
	"github.com/ortrain/ortrain/internal/testmodel"
)

// goBytesAllocated is how many bytes f allocates in Go memory.
func goBytesAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A parameter is held once, in its runtime value: loading it from the
// parameter file reads the bytes into the value with no copy in Go memory
// (which would stay resident as garbage for the whole run), and zeroing
// a gradient sum clears it in place.
func TestParametersLoadWithoutGoCopies(t *testing.T) {
	env := openEnv(t)
	const rows, cols = 1024, 1024 // 4 MiB
	w := testmodel.RandFloats(rand.New(rand.NewSource(1)), rows*cols)
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := safetensors.WriteFile(path, map[string]safetensors.Tensor{"w": safetensors.FromFloat32([]int64{rows, cols}, w)}, nil); err != nil {
		t.Fatal(err)
	}
	s, err := env.NewSessionFromBytes(identityModel(), "copy", onnxrt.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := s.Alloc(onnxrt.Float32, []int64{rows, cols})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	e := &Engine{cur: map[string]*onnxrt.Value{"w": v}, shared: map[string]*onnxrt.Value{}, copier: s}
	idx, err := safetensors.OpenIndex(path)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	p := artifacts.Parameter{Name: "w", Shape: []int64{rows, cols}, Trainable: true}
	var loadErr error
	loaded := goBytesAllocated(func() { loadErr = e.loadParam(p, idx) })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	if loaded > rows*cols*4/16 {
		t.Errorf("loading a %d-byte parameter allocated %d bytes of Go memory: a copy of it", rows*cols*4, loaded)
	}
	got, err := v.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	for i := range w {
		if got[i] != w[i] {
			t.Fatalf("element %d: %v, the file holds %v", i, got[i], w[i])
		}
	}
	var zeroErr error
	if zeroed := goBytesAllocated(func() { zeroErr = e.zero(v) }); zeroErr != nil || zeroed > 4096 {
		t.Errorf("zeroing allocated %d bytes of Go memory (err %v)", zeroed, zeroErr)
	}
	if got, _ := v.Float32s(); got[0] != 0 || got[len(got)-1] != 0 {
		t.Error("zero left values")
	}
}

// The training and optimizer sessions allocate from one arena, so the
// process holds the larger of their peaks, not the sum.
func TestTrainingAndOptimizerShareOneArena(t *testing.T) {
	env := openEnv(t)
	dir := t.TempDir()
	model := testmodel.WriteToy(t, dir, testmodel.Toy{Act: "Tanh", Output: "logits"})
	out := filepath.Join(dir, "art")
	if _, err := artifacts.Build(artifacts.Config{Model: model, Out: out}); err != nil {
		t.Fatal(err)
	}
	tr := openTrainer(t, env, out, Options{})
	if _, _, err := tr.trainMicroBatch(toyBatch(), 1, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.optimizerStep(1e-3); err != nil {
		t.Fatal(err)
	}
	a, err := tr.train.ArenaStats()
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.opt.ArenaStats()
	if err != nil {
		t.Fatal(err)
	}
	if a["NumAllocs"] == 0 || a["NumAllocs"] != b["NumAllocs"] || a["TotalAllocated"] != b["TotalAllocated"] {
		t.Fatalf("training session's arena %v, optimizer session's %v: want one arena that both runs used", a, b)
	}
}
