package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// TestTrainOnDataFormats trains the T5 fixture for 3 steps on the same
// records as JSONL, Parquet, a save_to_disk folder and parallel text
// files: every run logs the same losses and grad norms as the JSONL run.
func TestTrainOnDataFormats(t *testing.T) {
	root := t.TempDir()
	model := filepath.Join(root, "t5")
	copyModel(t, model)
	parallel := testenv.RealData(t, "translation", "tatoeba-en-ro")
	var want []any
	for i, data := range []string{
		testenv.Testdata(t, "dataformats", "tatoeba-dev.jsonl"),
		testenv.Testdata(t, "dataformats", "tatoeba-dev.parquet"),
		testenv.Testdata(t, "dataformats", "tatoeba-dev-disk"),
		filepath.Join(parallel, "dev"),
	} {
		out := filepath.Join(root, "out", filepath.Base(data))
		code, stdout, stderr := runTrainCLI(t, "--model", model, "--train_file", data, "--source_lang", "en", "--target_lang", "ro",
			"--do_train", "--max_steps", "3", "--logging_steps", "1", "--per_device_train_batch_size", "4",
			"--max_source_length", "16", "--max_target_length", "16", "--output_dir", out, "--save_strategy", "no")
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", data, code, stdout, stderr)
		}
		b, err := os.ReadFile(filepath.Join(out, "trainer_state.json"))
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			LogHistory []map[string]any `json:"log_history"`
		}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		var got []any
		for _, l := range st.LogHistory {
			if l["loss"] != nil {
				got = append(got, []any{l["step"], l["loss"], l["grad_norm"]})
			}
		}
		if i == 0 {
			want = got
			if len(want) != 3 {
				t.Fatalf("JSONL run logged %v", want)
			}
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: logged %v, JSONL %v", data, got, want)
		}
	}
}
