package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
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

// TestScriptArguments: run_translation's data arguments as flags: the
// sample limits show in the metrics as the scripts report them, num_beams
// and val_max_target_length reach the generation settings, and bad values
// are usage errors.
func TestScriptArguments(t *testing.T) {
	root := t.TempDir()
	model := filepath.Join(root, "t5")
	copyModel(t, model)
	data := testenv.Testdata(t, "dataformats", "tatoeba-dev.jsonl")
	out := filepath.Join(root, "out")
	code, stdout, stderr := runTrainCLI(t, "--model", model, "--train_file", data, "--validation_file", data, "--source_lang", "en", "--target_lang", "ro",
		"--do_train", "--do_eval", "--max_steps", "2", "--per_device_train_batch_size", "4", "--output_dir", out, "--save_strategy", "no",
		"--max_train_samples", "10", "--max_eval_samples", "6", "--max_source_length", "12", "--max_target_length", "8",
		"--val_max_target_length", "5", "--pad_to_max_length", "--ignore_pad_token_for_loss=false", "--num_beams", "3")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var all map[string]any
	b, err := os.ReadFile(filepath.Join(out, "all_results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	if all["train_samples"] != 10.0 || all["eval_samples"] != 6.0 {
		t.Errorf("train_samples %v, eval_samples %v; want 10 and 6", all["train_samples"], all["eval_samples"])
	}
	var args map[string]any
	if b, err = os.ReadFile(filepath.Join(out, "training_args.json")); err == nil {
		if err := json.Unmarshal(b, &args); err != nil {
			t.Fatal(err)
		}
		if args["generation_num_beams"] != 3.0 || args["generation_max_length"] != 5.0 {
			t.Errorf("generation_num_beams %v, generation_max_length %v; want 3 and 5", args["generation_num_beams"], args["generation_max_length"])
		}
	} else {
		t.Logf("no training_args.json: %v", err)
	}
	// run_summarization's column names: flat records with list sources and
	// several references.
	sum := testenv.Testdata(t, "dataformats", "scitldr-dev.parquet")
	if code, stdout, stderr := runTrainCLI(t, "--model", model, "--train_file", sum, "--text_column", "source", "--summary_column", "target",
		"--do_train", "--max_steps", "1", "--max_train_samples", "8", "--max_source_length", "16", "--max_target_length", "8",
		"--output_dir", filepath.Join(root, "sum"), "--save_strategy", "no"); code != 0 {
		t.Errorf("--text_column/--summary_column: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr := runTrainCLI(t, "--model", model, "--train_file", sum, "--text_column", "document", "--do_train", "--max_steps", "1",
		"--output_dir", filepath.Join(root, "sum2")); code != exitData || !strings.Contains(stderr, `no column "document"`) {
		t.Errorf("a missing --text_column: exit %d: %s", code, stderr)
	}
	for _, bad := range [][]string{{"--num_beams", "0"}, {"--max_train_samples", "-1"}, {"--pad_to_max_length"}} {
		args := append([]string{"--model", model, "--train_file", data, "--source_lang", "en", "--target_lang", "ro", "--do_train",
			"--max_steps", "1", "--output_dir", filepath.Join(root, "bad")}, bad...)
		if code, _, stderr := runTrainCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", bad, code, exitUsage, stderr)
		}
	}
}

// TestBareResumeFlag: --resume_from_checkpoint without a path continues
// the last checkpoint in output_dir, as in HF's example scripts, whether
// it ends the command line or another flag follows.
func TestBareResumeFlag(t *testing.T) {
	if got := bareResume([]string{"ortrain", "train", "--resume_from_checkpoint", "--do_train"}); !slices.Equal(got,
		[]string{"ortrain", "train", "--resume_from_checkpoint", "true", "--do_train"}) {
		t.Errorf("flag before a flag: %q", got)
	}
	if got := bareResume([]string{"train", "--resume_from_checkpoint", "ckpt", "--resume-from-checkpoint"}); !slices.Equal(got,
		[]string{"train", "--resume_from_checkpoint", "ckpt", "--resume-from-checkpoint", "true"}) {
		t.Errorf("path kept, last flag completed: %q", got)
	}
	root := t.TempDir()
	model := filepath.Join(root, "t5")
	copyModel(t, model)
	data := testenv.Testdata(t, "dataformats", "tatoeba-dev.jsonl")
	out := filepath.Join(root, "out")
	base := []string{"--model", model, "--train_file", data, "--source_lang", "en", "--target_lang", "ro", "--output_dir", out,
		"--per_device_train_batch_size", "4", "--save_steps", "2", "--logging_steps", "1", "--max_source_length", "8", "--max_target_length", "8"}
	if code, stdout, stderr := runTrainCLI(t, append(base, "--do_train", "--max_steps", "2")...); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr := runTrainCLI(t, append(base, "--resume_from_checkpoint", "--do_train", "--max_steps", "4")...)
	if code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, stderr)
	}
	b, err := os.ReadFile(filepath.Join(out, "checkpoint-4", "trainer_state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		LogHistory []map[string]any `json:"log_history"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	// A fresh run would have been refused (output_dir not empty); the
	// resumed one keeps the first run's history: step 2 at the learning
	// rate of a 2-step schedule (2.5e-5), not of a 4-step one (3.75e-5).
	if len(st.LogHistory) != 4 || st.LogHistory[1]["learning_rate"] != 2.5e-05 {
		t.Errorf("resumed history %v; output:\n%s\n%s", st.LogHistory, stdout, stderr)
	}
}
