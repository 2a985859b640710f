package ortckpt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/testenv"
)

type probe struct {
	First8 []float64 `json:"first8"`
	L2     float64   `json:"l2"`
	Shape  []int64   `json:"shape"`
}

type artifactRefs struct {
	RequiresGrad     []string         `json:"requires_grad"`
	Step1Probes      map[string]probe `json:"checkpoint_step1_probe_parameters"`
	LearningRateStep float64          `json:"learning_rate_step1"`
}

func loadRefs(t *testing.T) (artifactRefs, string) {
	dir := testenv.Testdata(t, "ort-artifacts", "t5-tiny")
	b, err := os.ReadFile(filepath.Join(dir, "refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r artifactRefs
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r, dir
}

func floats(raw []byte) []float32 {
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// Checkpoints written by onnxruntime-training 1.19.2's generate_artifacts
// and after one optimizer step decode with the parameters, moments and step
// its Python API reported.
func TestDecodeGenuineCheckpoints(t *testing.T) {
	refs, dir := loadRefs(t)
	c, err := ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Trainable) != len(refs.RequiresGrad) || len(c.Frozen) != 0 {
		t.Fatalf("%d trainable, %d frozen; want %d, 0", len(c.Trainable), len(c.Frozen), len(refs.RequiresGrad))
	}
	names := map[string]bool{}
	for _, p := range c.Trainable {
		names[p.Name] = true
		if p.DataType != 1 || int64(len(p.Raw)) != 4*count(p.Dims) {
			t.Fatalf("%s: type %d, %d bytes for %v", p.Name, p.DataType, len(p.Raw), p.Dims)
		}
	}
	for _, n := range refs.RequiresGrad {
		if !names[n] {
			t.Fatalf("parameter %s missing", n)
		}
	}
	if len(c.Groups) != 0 {
		t.Fatalf("fresh checkpoint has %d optimizer groups", len(c.Groups))
	}

	s, err := ReadFile(filepath.Join(dir, "checkpoint_step1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Groups) != 1 || s.Groups[0].Name != "group0" || s.Groups[0].Step != 1 {
		t.Fatalf("groups %+v", s.Groups)
	}
	if len(s.Groups[0].States) != len(refs.RequiresGrad) {
		t.Fatalf("%d parameter states", len(s.Groups[0].States))
	}
	for _, st := range s.Groups[0].States {
		if len(st.Momentums) != 2 || st.Momentums[0].Name != "momentum0" || st.Momentums[1].Name != "momentum1" {
			t.Fatalf("%s: moments %v", st.Param, st.Momentums)
		}
	}
	byName := map[string]Tensor{}
	for _, p := range s.Trainable {
		byName[p.Name] = p
	}
	for name, pr := range refs.Step1Probes {
		p, ok := byName[name]
		if !ok {
			t.Fatalf("probe %s missing", name)
		}
		v := floats(p.Raw)
		l2 := 0.0
		for _, x := range v {
			l2 += float64(x) * float64(x)
		}
		if math.Abs(math.Sqrt(l2)-pr.L2) > 1e-4*pr.L2 || !reflect.DeepEqual(p.Dims, pr.Shape) {
			t.Fatalf("%s: l2 %v dims %v; ONNX Runtime says %v %v", name, math.Sqrt(l2), p.Dims, pr.L2, pr.Shape)
		}
		for i, want := range pr.First8 {
			if float64(v[i]) != want {
				t.Fatalf("%s[%d] = %v, ONNX Runtime says %v", name, i, v[i], want)
			}
		}
	}
}

// Encode writes what Decode reads back, for both genuine checkpoints.
func TestRoundTrip(t *testing.T) {
	_, dir := loadRefs(t)
	for _, f := range []string{"checkpoint", "checkpoint_step1"} {
		c, err := ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		c.Ints["global_step"] = 7
		c.Floats["best_metric"] = 0.25
		c.Strings["origin"] = "ortrain"
		out := filepath.Join(t.TempDir(), "checkpoint")
		if err := WriteFile(out, c); err != nil {
			t.Fatal(err)
		}
		back, err := ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		want := *c
		want.Trainable, want.Frozen = sortedTensors(c.Trainable), sortedTensors(c.Frozen)
		for i := range want.Groups {
			g := &want.Groups[i]
			states := append([]ParamState(nil), g.States...)
			sortStates(states)
			g.States = states
		}
		if !reflect.DeepEqual(normalize(back), normalize(&want)) {
			t.Fatalf("%s: round trip differs", f)
		}
	}
}

func sortStates(s []ParamState) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Param < s[j-1].Param; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// normalize maps empty slices to nil for comparison.
func normalize(c *Checkpoint) *Checkpoint {
	n := *c
	fix := func(ts []Tensor) []Tensor {
		if len(ts) == 0 {
			return nil
		}
		out := make([]Tensor, len(ts))
		for i, t := range ts {
			if len(t.Dims) == 0 {
				t.Dims = nil
			}
			if len(t.Raw) == 0 {
				t.Raw = nil
			}
			out[i] = t
		}
		return out
	}
	n.Trainable, n.Frozen = fix(c.Trainable), fix(c.Frozen)
	if len(c.Groups) == 0 {
		n.Groups = nil
	}
	for i := range n.Groups {
		for k := range n.Groups[i].States {
			n.Groups[i].States[k].Momentums = fix(n.Groups[i].States[k].Momentums)
		}
	}
	return &n
}

func TestBadInput(t *testing.T) {
	_, dir := loadRefs(t)
	good, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		data []byte
		msg  string
	}{
		"short":         {[]byte{1, 2}, "too short"},
		"wrong id":      {append(append(append([]byte{}, good[:4]...), "ORTM"...), good[8:]...), `file identifier "ORTM"`},
		"truncated":     {good[:len(good)/3], "truncated or corrupt"},
		"an onnx model": {[]byte("\x08\x07\x12\x07pytorch and more bytes"), "file identifier"},
		"newer version": {withVersion(t, good, 3), "checkpoint version 3"},
	}
	for name, c := range cases {
		_, err := Decode(c.data)
		if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %v, want fault.Input mentioning %q", name, err, c.msg)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "no-such-checkpoint")); err == nil || !strings.Contains(err.Error(), "no-such-checkpoint") {
		t.Errorf("missing file: %v", err)
	}
}

// withVersion rewrites the version field of a checkpoint buffer.
func withVersion(t *testing.T, b []byte, v int32) []byte {
	c, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	c.Version = Version
	out, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	r := reader{buf: out}
	root, _ := r.u32(0)
	tb, _ := r.table(int(root))
	p := tb.field(0)
	binary.LittleEndian.PutUint32(out[p:], uint32(v))
	return out
}

// ONNX Runtime verifies the buffer before loading, including the absolute
// alignment of 8-byte scalars and vector elements: check ours.
func TestWrittenAlignment(t *testing.T) {
	_, dir := loadRefs(t)
	c, err := ReadFile(filepath.Join(dir, "checkpoint_step1"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	r := reader{buf: b}
	root, _ := r.u32(0)
	tb, _ := r.table(int(root))
	groups, err := tb.tables(2)
	if err != nil || len(groups) != 1 {
		t.Fatalf("groups: %v", err)
	}
	if p := groups[0].field(1); p%8 != 0 {
		t.Fatalf("step field at %d is not 8-aligned", p)
	}
	ms, _, _ := tb.subtable(1)
	params, _ := ms.tables(0)
	for _, p := range params {
		if _, first, _ := p.vector(2); first%8 != 0 {
			t.Fatalf("dims elements at %d are not 8-aligned", first)
		}
		if p.pos%4 != 0 || p.vtable%2 != 0 {
			t.Fatalf("table at %d / vtable at %d misaligned", p.pos, p.vtable)
		}
	}
}
