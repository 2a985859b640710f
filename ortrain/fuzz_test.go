package ortrain

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzTrainingConfig reads arbitrary bytes as a --config file (JSON or
// YAML) and finalizes the arguments: errors, never panics. Run by
// scripts/fuzz.sh.
func FuzzTrainingConfig(f *testing.F) {
	f.Add([]byte("learning_rate: 3e-4\nnum_train_epochs: 2\neval_strategy: steps\neval_steps: 0.25\nsave_total_limit: 2\nlr_scheduler_kwargs: {power: 2}\n"))
	f.Add([]byte(`{"per_device_train_batch_size": 8, "report_to": ["jsonl"], "metric_for_best_model": "bleu", "load_best_model_at_end": true, "save_strategy": "steps"}`))
	f.Add([]byte("max_steps: 1e300\nwarmup_steps: -1\n"))
	p := filepath.Join(f.TempDir(), "args.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		a := DefaultArguments()
		if a.LoadConfigFile(p) == nil {
			a.Finalize()
		}
	})
}

// FuzzTrainerState reads arbitrary bytes as a checkpoint's
// trainer_state.json: errors for anything a resume could not use, never a
// panic or a count that would make training loop forever. Run by
// scripts/fuzz.sh.
func FuzzTrainerState(f *testing.F) {
	f.Add([]byte(`{"global_step": 12, "epoch": 3.0, "max_steps": 12, "best_metric": 0.5, "best_global_step": 10, "best_model_checkpoint": "out/checkpoint-10",
		"log_history": [{"loss": 1.5, "step": 1}, {"eval_loss": NaN, "step": 2}], "stateful_callbacks": {"TrainerControl": {"args": {}, "attributes": {}}}, "train_batch_size": 4}`))
	f.Add([]byte(`{"global_step": 1e300}`))
	p := filepath.Join(f.TempDir(), TrainerStateName)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := LoadTrainerState(p)
		if err != nil {
			return
		}
		if s.GlobalStep < 0 || s.GlobalStep >= maxCount || s.MaxSteps < 0 {
			t.Fatalf("accepted counts a resume cannot use: %+v", s)
		}
		s.MarshalHF()
	})
}
