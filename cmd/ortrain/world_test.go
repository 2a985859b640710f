package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/ortrain"
)

// mpiArgsEnv carries the CLI arguments to the copies of the test binary
// that mpirun starts (see TestMain); mpiArgsEnv + "_RANK<r>" overrides them
// for rank r.
const mpiArgsEnv = "ORTRAIN_MPI_CLI"

func TestMain(m *testing.M) {
	if args := os.Getenv(mpiArgsEnv); args != "" {
		if own := os.Getenv(mpiArgsEnv + "_RANK" + os.Getenv("OMPI_COMM_WORLD_RANK")); own != "" {
			args = own
		}
		os.Exit(runInterruptible(append([]string{"ortrain"}, strings.Split(args, "\n")...), strings.NewReader(""), os.Stdout, os.Stderr, interruptGrace))
	}
	os.Exit(m.Run())
}

// mpirunCLI runs the CLI as n ranks under mpirun; rankArgs, when not nil,
// gives rank 1 other arguments.
func mpirunCLI(t *testing.T, n int, args, rankArgs []string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmdline := append(testenv.MPIRun(t, n), os.Args[0], "-test.run=^$")
	cmd := exec.CommandContext(ctx, cmdline[0], cmdline[1:]...)
	cmd.Env = append(os.Environ(), mpiArgsEnv+"="+strings.Join(args, "\n"), "ORTRAIN_COLLECTIVE_TIMEOUT=20s")
	if rankArgs != nil {
		cmd.Env = append(cmd.Env, mpiArgsEnv+"_RANK1="+strings.Join(rankArgs, "\n"))
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("mpirun still running after 3 minutes:\n%s", out)
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatal(err)
	}
	return 0, string(out)
}

// `mpirun -np 2 ortrain predict` writes what one process writes, byte for
// byte: the predictions and the scores' statistics files; the report
// differs only in its timings and paths.
func TestPredictUnderMPIRunEqualsOneProcess(t *testing.T) {
	model, tok, input, refPath := predictPaths(t)
	dir := t.TempDir()
	common := []string{"--model", model, "--tokenizer", tok, "--input", input, "--refs", refPath, "--num-beams", "3", "--batch-size", "5", "--threads", "1"}
	one, two := filepath.Join(dir, "one.txt"), filepath.Join(dir, "two.txt")
	if code, _, stderr := runPredictCLI(t, append(common, "--output", one)...); code != 0 {
		t.Fatalf("one process: exit %d: %s", code, stderr)
	}
	args := append([]string{"--ort-lib", testenv.ORTLibrary(t), "predict", "--no-progress"}, append(common, "--output", two)...)
	code, out := mpirunCLI(t, 2, args, nil)
	if code != 0 {
		t.Fatalf("mpirun -np 2: exit %d:\n%s", code, out)
	}
	if strings.Count(out, "BLEU|") != 1 {
		t.Errorf("want the summary once (rank 0), got:\n%s", out)
	}
	for _, suffix := range []string{"", ".bleu-stats.json", ".rouge-stats.json"} {
		a, err1 := os.ReadFile(one + suffix)
		b, err2 := os.ReadFile(two + suffix)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if string(a) != string(b) {
			t.Errorf("two%s differs from one process's:\n%s\n---\n%s", suffix, b, a)
		}
	}
	reports := map[string]map[string]any{}
	for _, p := range []string{one, two} {
		var r map[string]any
		b, err := os.ReadFile(p + ".metrics.json")
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err != nil {
			t.Fatal(err)
		}
		delete(r, "seconds")
		delete(r, "sentences_per_second")
		delete(r, "stats_files")
		reports[p] = r
	}
	a, _ := json.Marshal(reports[one])
	b, _ := json.Marshal(reports[two])
	if string(a) != string(b) {
		t.Errorf("reports differ:\n%s\n%s", b, a)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "two.txt.rank*"))
	if len(left) > 0 {
		t.Errorf("the ranks' files are left: %v", left)
	}
}

// Ranks started with different arguments stop at once, naming the rank.
func TestPredictUnderMPIRunRefusesDifferentArguments(t *testing.T) {
	model, tok, input, _ := predictPaths(t)
	out := filepath.Join(t.TempDir(), "p.txt")
	args := []string{"--ort-lib", testenv.ORTLibrary(t), "predict", "--no-progress", "--model", model, "--tokenizer", tok, "--input", input, "--output", out}
	other := append(append([]string{}, args...), "--num-beams", "2")
	code, log := mpirunCLI(t, 2, args, other)
	if code != exitUsage || !strings.Contains(log, "rank 1's predict options differs from rank 0's") {
		t.Fatalf("want exit %d naming rank 1, got %d:\n%s", exitUsage, code, log)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("an output was written")
	}
}

// trainFixture writes a copy-task training and validation file (JSONL
// records with source and target fields) from the predict fixture's
// inputs, for the t5-tiny model and its tokenizer.
func trainFixture(t *testing.T) (args []string, out string) {
	t.Helper()
	model, tok, input, _ := predictPaths(t)
	dir := t.TempDir()
	lines := readLinesT(t, input)
	var b strings.Builder
	for _, l := range lines {
		rec, _ := json.Marshal(map[string]string{"source": l, "target": l})
		b.Write(append(rec, '\n'))
	}
	train, dev := filepath.Join(dir, "train.jsonl"), filepath.Join(dir, "dev.jsonl")
	if err := os.WriteFile(train, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dev, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out = filepath.Join(dir, "out")
	return []string{"--ort-lib", testenv.ORTLibrary(t), "train", "--no-progress", "--model", model, "--tokenizer", tok,
		"--train_file", train, "--validation_file", dev, "--source_field", "source", "--target_field", "target",
		"--output_dir", out, "--do_train", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4",
		"--gradient_accumulation_steps", "2", "--eval_strategy", "steps", "--logging_steps", "1", "--threads", "1"}, out
}

// `mpirun -np 2 ortrain train` trains, process 0 alone reports and writes
// the checkpoints and final files.
func TestTrainUnderMPIRun(t *testing.T) {
	args, out := trainFixture(t)
	// Evaluation batches of 5 over 24 rows: the last batches get filler rows.
	test := filepath.Join(filepath.Dir(out), "dev.jsonl")
	code, log := mpirunCLI(t, 2, append(args, "--max_steps", "4", "--eval_steps", "2", "--save_steps", "2", "--per_device_eval_batch_size", "5",
		"--predict_with_generate", "--generation_max_length", "8", "--do_predict", "--test_file", test), nil)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, log)
	}
	if n := strings.Count(log, "***** train metrics *****"); n != 1 {
		t.Errorf("train metrics printed %d times:\n%s", n, log)
	}
	if !strings.Contains(log, "Total train batch size (w. parallel, distributed & accumulation) = 16") {
		t.Errorf("the banner does not count both processes:\n%s", log)
	}
	for _, f := range []string{"checkpoint-2/model.safetensors", "checkpoint-4/optimizer.safetensors", "model.safetensors", "trainer_state.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if preds := readLinesT(t, filepath.Join(out, ortrain.PredictionsName)); len(preds) != 24 {
		t.Errorf("%d predictions for 24 test examples", len(preds))
	}
	var rng map[string]any
	b, err := os.ReadFile(filepath.Join(out, "checkpoint-4", "rng_state.json"))
	if err == nil {
		err = json.Unmarshal(b, &rng)
	}
	if err != nil || rng["world_size"] != 2.0 {
		t.Errorf("rng_state.json: %v %v", rng, err)
	}
	// A resume on another number of processes is refused.
	var stdout, stderr strings.Builder
	one := append(append([]string{"ortrain"}, args...), "--max_steps", "6", "--eval_steps", "2", "--save_steps", "2", "--resume_from_checkpoint", "true")
	if code := run(context.Background(), one, strings.NewReader(""), &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "written by 2 processes and this run has 1") {
		t.Errorf("resume in 1 process: exit %d, %s", code, stderr.String())
	}
}

// Ranks started with different flags stop at once, naming the rank.
func TestTrainUnderMPIRunRefusesDifferentArguments(t *testing.T) {
	args, out := trainFixture(t)
	other := append(append([]string{}, args...), "--max_steps", "2")
	code, log := mpirunCLI(t, 2, append(args, "--max_steps", "3"), other)
	if code != exitUsage || !strings.Contains(log, "rank 1's command-line flags differs from rank 0's") {
		t.Fatalf("want exit %d naming rank 1, got %d:\n%s", exitUsage, code, log)
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoint-2")); err == nil {
		t.Error("training ran")
	}
}

// rankPID finds the process of rank under the mpirun process parent.
func rankPID(parent, rank int) int {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(parent) {
			continue
		}
		env, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if strings.Contains("\x00"+string(env)+"\x00", "\x00OMPI_COMM_WORLD_RANK="+strconv.Itoa(rank)+"\x00") {
			return pid
		}
	}
	return 0
}

// A rank killed or stopped during training ends the job with a non-zero
// exit that names it, within the collective timeout; the last checkpoint
// is intact.
func TestTrainUnderMPIRunLosesARank(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGSTOP} {
		t.Run(sig.String(), func(t *testing.T) {
			args, out := trainFixture(t)
			args = append(args, "--max_steps", "400", "--eval_steps", "50", "--save_steps", "2")
			cmdline := append(testenv.MPIRun(t, 2), os.Args[0], "-test.run=^$")
			cmd := exec.Command(cmdline[0], cmdline[1:]...)
			cmd.Env = append(os.Environ(), mpiArgsEnv+"="+strings.Join(args, "\n"), "ORTRAIN_COLLECTIVE_TIMEOUT=5s")
			var log strings.Builder
			cmd.Stdout, cmd.Stderr = &log, &log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			deadline := time.Now().Add(2 * time.Minute)
			for {
				if _, err := os.Stat(filepath.Join(out, "checkpoint-4")); err == nil {
					break
				}
				select {
				case err := <-done:
					t.Fatalf("ended before checkpoint-4: %v\n%s", err, log.String())
				case <-time.After(20 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("no checkpoint-4 after 2 minutes:\n%s", log.String())
				}
			}
			pid := rankPID(cmd.Process.Pid, 1)
			if pid == 0 {
				cmd.Process.Kill()
				t.Fatal("rank 1's process not found")
			}
			killed := time.Now()
			syscall.Kill(pid, sig)
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				cmd.Process.Kill()
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("still running a minute after rank 1 got %v:\n%s", sig, log.String())
			}
			if sig == syscall.SIGSTOP {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			took := time.Since(killed)
			t.Logf("%v: exit %v after %s", sig, err, took.Round(time.Millisecond))
			want := "mpirun noticed that process rank 1"
			if sig == syscall.SIGSTOP {
				want = "rank 1 does not answer"
			}
			if err == nil || !strings.Contains(log.String(), want) {
				t.Fatalf("want a failure naming rank 1 (%q), got %v:\n%s", want, err, log.String())
			}
			last, lerr := ortrain.LastCheckpoint(out)
			if lerr != nil || last == "" {
				t.Fatalf("no intact checkpoint: %v", lerr)
			}
			if _, err := os.Stat(filepath.Join(last, "model.safetensors")); err != nil {
				t.Errorf("%s: %v", last, err)
			}
		})
	}
}
