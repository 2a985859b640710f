package engine_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/ortrain/ortrain/ortrain"
	"github.com/ortrain/ortrain/ortrain/engine"
)

// Training from Go: open ONNX Runtime, prepare a trainer from a model
// folder and data files (here the embedded demo's, written to a temporary
// folder), and run it as HF's run_translation.py runs Seq2SeqTrainer.
func Example() {
	env, err := engine.OpenRuntime("") // $ORTRAIN_ORT_LIB, else the user cache
	if err != nil {
		log.Fatal(err)
	}
	defer env.Close()
	dir, err := os.MkdirTemp("", "ortrain-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	args := ortrain.DefaultArguments()
	args.OutputDir = filepath.Join(dir, "out")
	args.DoTrain = true
	args.MaxSteps = 4
	args.PerDeviceTrainBatchSize = 8
	args.LearningRate = 1e-3
	args.SaveSteps = 2
	args.Threads = 1
	if err := args.Finalize(); err != nil {
		log.Fatal(err)
	}
	cfg, err := engine.DemoConfig(dir, args) // model.onnx, tokenizer and data files
	if err != nil {
		log.Fatal(err)
	}
	cfg.ValidationFile, cfg.TestFile = "", ""
	sess, err := engine.Prepare(context.Background(), env, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.Trainer.Run(context.Background(), ortrain.RunOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("global step", out.Train.GlobalStep)
	for _, f := range []string{"checkpoint-2", "checkpoint-4", "model.safetensors", "trainer_state.json"} {
		_, err := os.Stat(filepath.Join(args.OutputDir, f))
		fmt.Println(f, err == nil)
	}
	// Output:
	// global step 4
	// checkpoint-2 true
	// checkpoint-4 true
	// model.safetensors true
	// trainer_state.json true
}
