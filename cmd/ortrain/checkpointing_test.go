package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainGradientCheckpointing trains the demo model for a few
// steps with and without --gradient_checkpointing (and its transformers 5
// name, --activation_checkpointing, from a --config file): the logged
// losses and gradient norms must agree.
func TestTrainGradientCheckpointing(t *testing.T) {
	history := func(out string, args ...string) []map[string]any {
		t.Helper()
		all := append([]string{"--demo", "--output_dir", out, "--max_steps", "4", "--logging_steps", "1",
			"--eval_strategy", "no", "--save_strategy", "no", "--do_predict=false"}, args...)
		code, stdout, stderr := runTrainCLI(t, all...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, stdout, stderr)
		}
		var st struct {
			LogHistory []map[string]any `json:"log_history"`
		}
		b, err := os.ReadFile(filepath.Join(out, "trainer_state.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		return st.LogHistory
	}
	dir := t.TempDir()
	plain := history(filepath.Join(dir, "plain"))
	ckpt := history(filepath.Join(dir, "ckpt"), "--gradient_checkpointing")
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(`{"activation_checkpointing": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	viaConfig := history(filepath.Join(dir, "config"), "--config", cfg)
	man, err := os.ReadFile(filepath.Join(dir, "config", "artifacts", "manifest.json"))
	if err != nil || !strings.Contains(string(man), `"gradient_checkpointing"`) {
		t.Errorf("activation_checkpointing in --config did not build checkpointed artifacts (%v)", err)
	}
	if len(plain) < 4 || len(ckpt) != len(plain) || len(viaConfig) != len(plain) {
		t.Fatalf("log_history lengths %d, %d, %d", len(plain), len(ckpt), len(viaConfig))
	}
	for i := range plain {
		for _, key := range []string{"loss", "grad_norm"} {
			want, ok := plain[i][key].(float64)
			if !ok {
				continue
			}
			for _, h := range [][]map[string]any{ckpt, viaConfig} {
				got, _ := h[i][key].(float64)
				if math.Abs(got-want) > 1e-6*math.Abs(want) {
					t.Errorf("log %d %s: %v with checkpointing, %v without", i, key, got, want)
				}
			}
		}
	}
}
