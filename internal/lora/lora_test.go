package lora

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
)

func TestConfigSetAndValidate(t *testing.T) {
	c := Defaults()
	for k, v := range map[string]any{"lora_r": "16", "lora_alpha": 32.0, "lora_dropout": "0.05", "lora_target_modules": "q, v", "lora_bias": "lora_only", "modules_to_save": "lm_head"} {
		if err := c.Set(k, v); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	if c.R != 16 || c.Alpha != 32 || c.Dropout != 0.05 || strings.Join(c.TargetModules, ",") != "q,v" || c.Bias != BiasLoRAOnly || c.ModulesToSave[0] != "lm_head" {
		t.Errorf("config %+v", c)
	}
	if c.Scaling() != 2 {
		t.Errorf("scaling %v, want alpha/r = 2", c.Scaling())
	}
	c.UseRSLoRA = true
	if math.Abs(c.Scaling()-8) > 1e-12 {
		t.Errorf("rslora scaling %v, want alpha/sqrt(r) = 8", c.Scaling())
	}
	if err := c.Validate("flags"); err != nil {
		t.Error(err)
	}
	for _, bad := range []struct {
		key  string
		val  any
		want string
	}{
		{"r", 0, "lora_r 0"},
		{"r", -4, "lora_r -4"},
		{"lora_dropout", 1.0, "lora_dropout 1"},
		{"bias", "some", "want none, all or lora_only"},
		{"target_modules", "", "lora_target_modules is empty"},
		{"target_modules", "re:(", "not a valid regular expression"},
	} {
		c := Defaults()
		c.TargetModules = []string{"q"}
		if err := c.Set(bad.key, bad.val); err != nil {
			t.Fatalf("%s: %v", bad.key, err)
		}
		err := c.Validate("flags")
		if !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s=%v: %v, want %q", bad.key, bad.val, err, bad.want)
		}
	}
	if err := c.Set("r", 2.5); err == nil {
		t.Error("r 2.5 accepted")
	}
	if err := c.Set("lora_rank", 2); err == nil || !strings.Contains(err.Error(), "known:") {
		t.Errorf("unknown key: %v", err)
	}
}

// InitA is Kaiming-uniform with a = sqrt(5): uniform in [-1/sqrt(in),
// 1/sqrt(in)), as PEFT's reset_lora_parameters draws lora_A; the draws
// depend on the seed and the module's name only.
func TestInitA(t *testing.T) {
	a := InitA(3, "encoder.block.0.layer.0.SelfAttention.q", 8, 512)
	bound := 1 / math.Sqrt(512)
	var sum, sq float64
	for _, x := range a {
		if math.Abs(float64(x)) > bound {
			t.Fatalf("%v outside ±%v", x, bound)
		}
		sum += float64(x)
		sq += float64(x) * float64(x)
	}
	n := float64(len(a))
	// uniform(-b, b): mean 0, variance b²/3
	if math.Abs(sum/n) > 4*bound/math.Sqrt(3*n) || math.Abs(sq/n/(bound*bound/3)-1) > 0.05 {
		t.Errorf("mean %v, variance %v (want 0, %v)", sum/n, sq/n, bound*bound/3)
	}
	if b := InitA(3, "encoder.block.0.layer.0.SelfAttention.q", 8, 512); b[17] != a[17] {
		t.Error("same seed and module, other values")
	}
	if b := InitA(3, "encoder.block.0.layer.0.SelfAttention.v", 8, 512); b[17] == a[17] {
		t.Error("another module, same values")
	}
	for _, x := range InitB(8, 16) {
		if x != 0 {
			t.Fatal("lora_B starts non-zero")
		}
	}
}

func TestMerge(t *testing.T) {
	// W [2,3], A [1,3], B [2,1], scaling 2: W + 2·B·A.
	w := []float32{1, 2, 3, 4, 5, 6}
	a := []float32{1, 0, -1}
	b := []float32{0.5, 2}
	got := Merge(w, a, b, 1, 3, 2, 2)
	want := []float32{2, 2, 2, 8, 5, 2}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("merged %v, want %v", got, want)
		}
	}
}

func TestTargetsRules(t *testing.T) {
	modules := ModuleNames([]string{"encoder.block.0.layer.0.SelfAttention.q.weight", "encoder.block.0.layer.0.SelfAttention.qkv.weight",
		"encoder.block.0.layer.0.layer_norm.weight", "lm_head.weight"})
	linear := func(m string) bool {
		return !strings.HasSuffix(m, "layer_norm") && strings.Count(m, ".") > 0 || m == "lm_head"
	}
	c := Defaults()
	c.TargetModules = []string{"q"}
	got, err := c.Targets(modules, linear, true)
	if err != nil || len(got) != 1 || got[0] != "encoder.block.0.layer.0.SelfAttention.q" {
		t.Errorf("q: %v %v (a suffix matches at a dot: qkv is not q)", got, err)
	}
	c.SetTargets("all-linear")
	got, _ = c.Targets(modules, linear, true)
	for _, m := range got {
		if m == "lm_head" {
			t.Errorf("all-linear adapts the output layer: %v", got)
		}
	}
	c.SetTargets("q,nothing")
	if _, err := c.Targets(modules, linear, true); !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), `"nothing" matches no module`) {
		t.Errorf("unmatched entry: %v", err)
	}
	// An adapter PEFT made only needs one entry to match (PEFT's rule).
	if got, err := c.Targets(modules, linear, false); err != nil || len(got) != 1 {
		t.Errorf("lenient: %v %v", got, err)
	}
	c.SetTargets("layer_norm")
	if _, err := c.Targets(modules, linear, true); !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), "no linear layer") {
		t.Errorf("layer norm: %v", err)
	}
}

// ReadConfig refuses what ortrain cannot apply, naming the key.
func TestReadConfigRefusals(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"peft_type": "PREFIX_TUNING", "task_type": "SEQ_2_SEQ_LM"}`, "LoRA adapters only"},
		{`{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 8, "target_modules": ["q"]}`, "task_type \"CAUSAL_LM\""},
		{`{"peft_type": "LORA", "use_dora": true, "r": 8, "target_modules": ["q"]}`, "DoRA"},
		{`{"peft_type": "LORA", "rank_pattern": {"q": 4}, "r": 8, "target_modules": ["q"]}`, "rank_pattern"},
		{`{"peft_type": "LORA", "r": 0, "target_modules": ["q"]}`, "lora_r 0"},
		{`{"peft_type": "LORA", "r": 8, "target_modules": []}`, "lora_target_modules is empty"},
		{`[1, 2]`, "not a JSON object"},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, ConfigFile), []byte(c.json), 0o644)
		_, _, err := ReadConfig(dir)
		if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), ConfigFile) {
			t.Errorf("%s: %v, want %q naming the file", c.json, err, c.want)
		}
	}
	dir := t.TempDir()
	if _, _, err := ReadConfig(dir); !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "no adapter_config.json") {
		t.Errorf("empty folder: %v", err)
	}
	// A string target_modules is PEFT's regular expression.
	os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ".*\\.(q|v)"}`), 0o644)
	c, _, err := ReadConfig(dir)
	if err != nil || c.TargetRegex != `.*\.(q|v)` || c.R != 4 || c.Alpha != 8 {
		t.Errorf("regex config: %+v %v", c, err)
	}
}
