package ortimport

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/ortckpt"
	"github.com/ortrain/ortrain/internal/testenv"
)

type intTensor struct {
	Shape []int64 `json:"shape"`
	Data  []int64 `json:"data"`
}

type refs struct {
	EvalLossInitial float64 `json:"eval_loss_initial_checkpoint"`
	EvalLossStep1   float64 `json:"eval_loss_after_step1"`
	TrainLossStep1  float64 `json:"train_loss_step1"`
}

type gradRef struct {
	Batch     map[string]intTensor `json:"batch"`
	Gradients map[string]struct {
		PyTorch []string  `json:"pytorch"`
		Shape   []int64   `json:"shape"`
		Grad    []float32 `json:"grad"`
	} `json:"gradients"`
}

// copyArtifacts copies the genuine folder, optionally using another
// checkpoint file as "checkpoint".
func copyArtifacts(t *testing.T, checkpoint string) string {
	t.Helper()
	src := testenv.Testdata(t, "ort-artifacts", "t5-tiny")
	dst := t.TempDir()
	for _, f := range []string{EvalFile, OptimizerFile, TrainingFile} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, f), b, 0o644)
	}
	b, err := os.ReadFile(filepath.Join(src, checkpoint))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dst, CheckpointFile), b, 0o644)
	return dst
}

func TestImportBadInput(t *testing.T) {
	good := copyArtifacts(t, "checkpoint")
	cases := []struct {
		name  string
		setup func(dir string)
		msg   string
	}{
		{"wrong file identifier", func(dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, EvalFile))
			os.WriteFile(filepath.Join(dir, CheckpointFile), b, 0o644)
		}, "file identifier"},
		{"unsupported checkpoint version", func(dir string) {
			c, _ := ortckpt.ReadFile(filepath.Join(good, CheckpointFile))
			b, _ := ortckpt.Encode(c)
			// version is the root table's first field: rewrite it.
			root := int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
			vt := root - int(int32(uint32(b[root])|uint32(b[root+1])<<8|uint32(b[root+2])<<16|uint32(b[root+3])<<24))
			off := int(b[vt+4]) | int(b[vt+5])<<8
			b[root+off] = 9
			os.WriteFile(filepath.Join(dir, CheckpointFile), b, 0o644)
		}, "checkpoint version 9"},
		{"missing eval model", func(dir string) { os.Remove(filepath.Join(dir, EvalFile)) }, "missing eval model"},
		{"missing checkpoint", func(dir string) { os.Remove(filepath.Join(dir, CheckpointFile)) }, "has no checkpoint"},
		{"parameter the model lacks", func(dir string) {
			c, _ := ortckpt.ReadFile(filepath.Join(good, CheckpointFile))
			c.Trainable = append(c.Trainable, ortckpt.Tensor{Name: "extra.weight", Dims: []int64{2}, DataType: 1, Raw: make([]byte, 8)})
			ortckpt.WriteFile(filepath.Join(dir, CheckpointFile), c)
		}, `parameter "extra.weight"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyArtifacts(t, "checkpoint")
			c.setup(dir)
			_, err := Import(Options{From: dir, Out: t.TempDir()})
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want an error mentioning %q", err, c.msg)
			}
			if !errors.Is(err, fault.Input) {
				t.Fatalf("not fault.Input: %v", err)
			}
		})
	}
}
