package optim

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

type refTensor struct {
	Shape []int64   `json:"shape"`
	Data  []float32 `json:"data"`
}

type refStep struct {
	LR       float64                         `json:"lr"`
	Grads    map[string]refTensor            `json:"grads"`
	GradNorm []float32                       `json:"grad_norm"`
	Params   map[string]refTensor            `json:"params"`
	State    map[string]map[string]refTensor `json:"state"`
}

type refCase struct {
	WeightDecay float64              `json:"weight_decay"`
	MaxGradNorm float64              `json:"max_grad_norm"`
	Beta1       float64              `json:"beta1"`
	Beta2       float64              `json:"beta2"`
	Eps         float64              `json:"eps"`
	Momentum    float64              `json:"momentum"`
	Initial     map[string]refTensor `json:"initial"`
	Steps       []refStep            `json:"steps"`
}

type refOptim struct {
	Decay map[string]bool `json:"decay"`
	Cases []refCase       `json:"cases"`
}

func readJSON(t *testing.T, v any, elem ...string) {
	t.Helper()
	b, err := os.ReadFile(testenv.Testdata(t, elem...))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func session(t *testing.T, m *onnxpb.ModelProto) *onnxrt.Session {
	t.Helper()
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := env.NewSessionFromBytes(b, "test", onnxrt.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func tensor[T onnxrt.Elem](t *testing.T, shape []int64, data []T) *onnxrt.Value {
	t.Helper()
	v, err := onnxrt.NewTensor(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func floats(t *testing.T, v *onnxrt.Value) []float32 {
	t.Helper()
	x, err := v.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// relErr is the largest |got-want| / max(|want|, floor) over the elements.
func relErr(got, want []float32, floor float64) float64 {
	worst := 0.0
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		worst = math.Max(worst, d/math.Max(math.Abs(float64(want[i])), floor))
	}
	return worst
}

func maxAbs(x []float32) float64 {
	m := 0.0
	for _, v := range x {
		m = math.Max(m, math.Abs(float64(v)))
	}
	return m
}

// runTrajectory feeds torch's gradients step by step, carrying parameters
// and optimizer state through the graph, and compares every step with torch.
func runTrajectory(t *testing.T, ref refOptim, build func([]Param) (*onnxpb.ModelProto, error), state []func(string) string, scalars func(c refCase, s refStep, step int) map[string]*onnxrt.Value) {
	names := []string{"dense.weight", "dense.bias", "layer_norm.weight"}
	var params []Param
	for _, n := range names {
		params = append(params, Param{Name: n, Shape: ref.Cases[0].Initial[n].Shape, Decay: ref.Decay[n]})
		if Decays(n) != ref.Decay[n] {
			t.Errorf("Decays(%q) = %v, torch reference groups it as %v", n, Decays(n), ref.Decay[n])
		}
	}
	m, err := build(params)
	if err != nil {
		t.Fatal(err)
	}
	s := session(t, m)
	for ci, c := range ref.Cases {
		cur := map[string][]float32{}
		for _, p := range params {
			cur[p.Name] = c.Initial[p.Name].Data
			for _, st := range state {
				cur[st(p.Name)] = make([]float32, len(c.Initial[p.Name].Data))
			}
		}
		worst, worstState := 0.0, 0.0
		for k, step := range c.Steps {
			in := scalars(c, step, k+1)
			in[MaxGradNorm] = tensor(t, nil, []float32{float32(c.MaxGradNorm)})
			for _, p := range params {
				in[p.Name] = tensor(t, p.Shape, cur[p.Name])
				in[GradName(p.Name)] = tensor(t, p.Shape, step.Grads[p.Name].Data)
				for _, st := range state {
					in[st(p.Name)] = tensor(t, p.Shape, cur[st(p.Name)])
				}
			}
			out, err := s.Run(in, nil)
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(floats(t, out[GradNorm]), step.GradNorm, 1e-30); e > 1e-6 {
				t.Errorf("case %d step %d: grad_norm %v, torch %v", ci, k+1, floats(t, out[GradNorm]), step.GradNorm)
			}
			for _, p := range params {
				cur[p.Name] = floats(t, out[UpdatedName(p.Name)])
				worst = math.Max(worst, relErr(cur[p.Name], step.Params[p.Name].Data, 1e-6))
				for _, st := range state {
					cur[st(p.Name)] = floats(t, out[UpdatedName(st(p.Name))])
					key := strings.TrimSuffix(st(""), ".")
					// torch updates exp_avg with a fused multiply-add (lerp), so
					// elements that cancel to near zero differ in their last bits:
					// state is compared relative to its largest element.
					want := step.State[p.Name][key].Data
					worstState = math.Max(worstState, relErr(cur[st(p.Name)], want, maxAbs(want)))
				}
			}
			for _, v := range out {
				v.Close()
			}
		}
		t.Logf("case %d (wd %v, max_grad_norm %v): max relative error vs torch over %d steps: parameters %.3g, state %.3g", ci, c.WeightDecay, c.MaxGradNorm, len(c.Steps), worst, worstState)
		if worst > 1e-6 || worstState > 1e-6 {
			t.Errorf("case %d: max relative error of parameters %.3g (limit 1e-6), of optimizer state relative to its largest element %.3g (limit 1e-6)", ci, worst, worstState)
		}
	}
}

func TestAdamWMatchesTorch(t *testing.T) {
	var ref refOptim
	readJSON(t, &ref, "optim", "adamw.json")
	runTrajectory(t, ref, BuildAdamW, []func(string) string{ExpAvgName, ExpAvgSqName}, func(c refCase, s refStep, step int) map[string]*onnxrt.Value {
		return map[string]*onnxrt.Value{
			LearningRate: tensor(t, nil, []float64{s.LR}),
			Step:         tensor(t, nil, []int64{int64(step)}),
			Beta1:        tensor(t, nil, []float64{c.Beta1}),
			Beta2:        tensor(t, nil, []float64{c.Beta2}),
			Epsilon:      tensor(t, nil, []float64{c.Eps}),
			WeightDecay:  tensor(t, nil, []float64{c.WeightDecay}),
		}
	})
}

func TestSGDMatchesTorch(t *testing.T) {
	var ref refOptim
	readJSON(t, &ref, "optim", "sgd.json")
	runTrajectory(t, ref, BuildSGD, []func(string) string{MomentumBufferName}, func(c refCase, s refStep, step int) map[string]*onnxrt.Value {
		return map[string]*onnxrt.Value{
			LearningRate: tensor(t, nil, []float64{s.LR}),
			Momentum:     tensor(t, nil, []float64{c.Momentum}),
			WeightDecay:  tensor(t, nil, []float64{c.WeightDecay}),
		}
	})
}

func TestLossMatchesHF(t *testing.T) {
	var ref struct {
		Logits refTensor `json:"logits"`
		Labels struct {
			Shape []int64
			Data  []int64
		} `json:"labels"`
		TokenCount int64 `json:"token_count"`
		Cases      []struct {
			LabelSmoothing float64   `json:"label_smoothing"`
			Loss           []float32 `json:"loss"`
		} `json:"cases"`
	}
	readJSON(t, &ref, "optim", "loss.json")
	for _, c := range ref.Cases {
		m, err := LossModel(LossOptions{LabelSmoothing: c.LabelSmoothing})
		if err != nil {
			t.Fatal(err)
		}
		s := session(t, m)
		out, err := s.Run(map[string]*onnxrt.Value{
			"logits": tensor(t, ref.Logits.Shape, ref.Logits.Data),
			Labels:   tensor(t, ref.Labels.Shape, ref.Labels.Data),
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		loss, sum := floats(t, out[Loss])[0], floats(t, out[LossSum])[0]
		count, err := out[TokenCount].Int64s()
		if err != nil {
			t.Fatal(err)
		}
		if e := relErr([]float32{loss}, c.Loss, 0); e > 1e-6 {
			t.Errorf("smoothing %v: loss %v, HF %v", c.LabelSmoothing, loss, c.Loss[0])
		}
		if count[0] != ref.TokenCount || math.Abs(float64(sum)/float64(count[0])-float64(loss)) > 1e-6*math.Abs(float64(loss)) {
			t.Errorf("smoothing %v: loss_sum %v / token_count %v != loss %v", c.LabelSmoothing, sum, count[0], loss)
		}
	}
}

func TestDecays(t *testing.T) {
	// Examples from anchors.md §1 (HF Trainer.get_decay_parameter_names).
	cases := map[string]bool{
		"encoder.block.0.layer.0.layer_norm.weight":          false,
		"encoder.final_layer_norm.weight":                    false,
		"model.encoder.layers.0.self_attn_layer_norm.weight": false,
		"model.encoder.layernorm_embedding.weight":           false,
		"model.decoder.layers.1.fc1.bias":                    false,
		"encoder.norm.weight":                                false,
		"shared.weight":                                      true,
		"lm_head.weight":                                     true,
		"encoder.block.0.layer.1.DenseReluDense.wi.weight":   true,
		"model.encoder.layers.0.self_attn.q_proj.weight":     true,
		"normalizer.weight":                                  true,
	}
	for name, want := range cases {
		if got := Decays(name); got != want {
			t.Errorf("Decays(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestBadInputs(t *testing.T) {
	if _, err := BuildAdamW(nil); err == nil {
		t.Error("BuildAdamW accepted no parameters")
	}
	if _, err := BuildAdamW([]Param{{Name: "a", Shape: []int64{1}}, {Name: "exp_avg.a", Shape: []int64{1}}}); err == nil {
		t.Error("BuildAdamW accepted colliding state names")
	}
	if _, err := BuildSGD([]Param{{Name: "step", Shape: []int64{1}}}); err == nil {
		t.Error("BuildSGD accepted a reserved name")
	}
	if _, err := LossModel(LossOptions{LabelSmoothing: 1}); err == nil {
		t.Error("label smoothing 1 accepted")
	}
	g := &onnxpb.GraphProto{}
	if err := AppendLoss(g, "logits", LossOptions{}); err == nil || !strings.Contains(err.Error(), "logits") {
		t.Errorf("loss on a graph without logits: %v", err)
	}
}
