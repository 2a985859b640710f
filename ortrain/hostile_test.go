package ortrain

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ortrain/ortrain/internal/fault"
)

// midRemoveKillFS SIGKILLs the process half-way through its n-th deletion
// of a complete checkpoint folder (one holding trainer_state.json): some of
// the folder's files are gone, the others are not.
type midRemoveKillFS struct {
	OSFileSystem
	n, count int
}

func (k *midRemoveKillFS) RemoveAll(p string) error {
	if _, err := os.Stat(filepath.Join(p, TrainerStateName)); err == nil {
		k.count++
		if k.count == k.n {
			entries, _ := os.ReadDir(p)
			for i, e := range entries {
				if i%2 == 0 {
					os.Remove(filepath.Join(p, e.Name()))
				}
			}
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
	return k.OSFileSystem.RemoveAll(p)
}

// A SIGKILL while rotation deletes an old checkpoint leaves no partial
// folder under a checkpoint-N name, and the resumed run ends bitwise equal
// to an uninterrupted one. (Before: the half-deleted checkpoint-N stayed,
// and a resume from it continued with a fresh optimizer after a warning.)
func TestRotationKilledMidDeleteLeavesNoPartialCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	ref := resumeArgs(filepath.Join(t.TempDir(), "ref"))
	if err := ref.Finalize(); err != nil {
		t.Fatal(err)
	}
	want := finalParams(t, ref)
	for _, n := range []int{1, 2, 3} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			if err := runChildProcess(t, out, "ORTRAIN_TEST_KILL_MIDREMOVE="+strconv.Itoa(n)); !wasKilled(err) {
				t.Fatalf("child was not killed: %v", err)
			}
			checkNoPartialCheckpoint(t, out)
			a := resumeArgs(out)
			a.ResumeFromCheckpoint = "true"
			if err := a.Finalize(); err != nil {
				t.Fatal(err)
			}
			if got := finalParams(t, a); !bytes.Equal(got, want) {
				t.Errorf("kill in deletion %d: the resumed run ends differently", n)
			}
			entries, _ := os.ReadDir(out)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), tmpPrefix) {
					t.Errorf("temporary %s left behind", e.Name())
				}
			}
		})
	}
}

// trainToCheckpoints runs resumeArgs to the end in out and returns the
// last checkpoint.
func trainToCheckpoints(t *testing.T, out string, edit func(*TrainingArguments)) string {
	t.Helper()
	a := resumeArgs(out)
	if edit != nil {
		edit(&a)
	}
	if err := a.Finalize(); err != nil {
		t.Fatal(err)
	}
	tr, _ := newResumeTrainer(a, nil)
	if _, err := tr.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	last, err := LastCheckpoint(out)
	if err != nil || last == "" {
		t.Fatalf("no checkpoint: %v", err)
	}
	return last
}

// A checkpoint without its optimizer or scheduler state is refused with a
// message naming the way on, unless resume_without_optimizer_state says to
// continue; a save_only_model checkpoint continues as in HF.
func TestResumeRefusesIncompleteCheckpoint(t *testing.T) {
	for _, missing := range []string{SchedulerName, "optimizer.bin", "model.safetensors"} {
		out := filepath.Join(t.TempDir(), "out")
		last := trainToCheckpoints(t, out, nil)
		os.Remove(filepath.Join(last, missing))
		a := resumeArgs(out)
		a.ResumeFromCheckpoint = last
		a.MaxSteps = 14
		if err := a.Finalize(); err != nil {
			t.Fatal(err)
		}
		tr, _ := newResumeTrainer(a, nil)
		var warn bytes.Buffer
		tr.Warn = &warn
		_, err := tr.Train(context.Background())
		if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "incomplete") || !strings.Contains(err.Error(), missing) {
			t.Errorf("without %s: %v", missing, err)
		}
		if missing == "model.safetensors" {
			continue
		}
		a.ResumeWithoutOptimizerState = true
		tr, _ = newResumeTrainer(a, nil)
		tr.Warn = &warn
		if _, err := tr.Train(context.Background()); err != nil {
			t.Errorf("without %s, told to continue: %v", missing, err)
		}
		if !strings.Contains(warn.String(), "start fresh") {
			t.Errorf("without %s: no warning: %q", missing, warn.String())
		}
	}
	out := filepath.Join(t.TempDir(), "model-only")
	last := trainToCheckpoints(t, out, func(a *TrainingArguments) { a.SaveOnlyModel = true; a.LoadBestModelAtEnd = false })
	a := resumeArgs(out)
	a.SaveOnlyModel = true
	a.ResumeFromCheckpoint = last
	a.MaxSteps = 14
	if err := a.Finalize(); err != nil {
		t.Fatal(err)
	}
	tr, _ := newResumeTrainer(a, nil)
	if _, err := tr.Train(context.Background()); err != nil {
		t.Errorf("save_only_model checkpoint: %v", err)
	}
}

// A trainer_state.json claiming absurd counts is bad input, refused at
// once (global_step 1e300 became a negative int and training never ended).
func TestTrainerStateAbsurdCountsRefused(t *testing.T) {
	for _, v := range []string{"1e300", "-4", "2.5", "9007199254740993"} {
		out := filepath.Join(t.TempDir(), "out")
		last := trainToCheckpoints(t, out, nil)
		p := filepath.Join(last, TrainerStateName)
		b, _ := os.ReadFile(p)
		i := bytes.Index(b, []byte(`"global_step": `))
		j := i + bytes.IndexByte(b[i:], ',')
		os.WriteFile(p, append(append(append([]byte{}, b[:i]...), []byte(`"global_step": `+v)...), b[j:]...), 0o644)
		a := resumeArgs(out)
		a.ResumeFromCheckpoint = last
		if err := a.Finalize(); err != nil {
			t.Fatal(err)
		}
		tr, _ := newResumeTrainer(a, nil)
		done := make(chan error, 1)
		go func() { _, err := tr.Train(context.Background()); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "global_step") {
				t.Errorf("global_step %s: %v", v, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("global_step %s: training does not end", v)
		}
	}
}

// Two runs on one output_dir: the second is refused while the first runs,
// naming the first's pid; the lock is released when the run ends, and a
// lock left by a killed process is not in force.
func TestOutputDirLock(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	first, err := LockOutputDir(out)
	if err != nil {
		t.Fatal(err)
	}
	a := resumeArgs(out)
	if err := a.Finalize(); err != nil {
		t.Fatal(err)
	}
	tr, _ := newResumeTrainer(a, nil)
	_, err = tr.Train(context.Background())
	if !errors.Is(err, ErrOutputDirInUse) || !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Fatalf("second run: %v", err)
	}
	if names := checkpointNames(out); len(names) > 0 {
		t.Fatalf("the refused run wrote %v", names)
	}
	first.Release()
	tr, _ = newResumeTrainer(a, nil)
	if _, err := tr.Train(context.Background()); err != nil {
		t.Fatalf("after release: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, LockName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the lock file outlives the run: %v", err)
	}

	// A holder killed with SIGKILL leaves its file, not its lock.
	dir := filepath.Join(t.TempDir(), "stale")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ORTRAIN_TEST_LOCK_DIR="+dir)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	stdout.Read(buf) // "locked"
	if _, err := LockOutputDir(dir); !errors.Is(err, ErrOutputDirInUse) {
		t.Fatalf("while the child holds it: %v", err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	l, err := LockOutputDir(dir)
	if err != nil {
		t.Fatalf("lock left by a killed process: %v", err)
	}
	l.Release()
}

// lockHolderChild is the child of TestOutputDirLock (see TestMain): it
// takes the lock and waits to be killed.
func lockHolderChild(dir string) int {
	if _, err := LockOutputDir(dir); err != nil {
		os.Stderr.WriteString(err.Error())
		return 1
	}
	os.Stdout.WriteString("locked")
	select {}
}

// A key given twice in a --config file is refused naming both lines (the
// last one used to win unseen), at the top level and inside a value.
func TestConfigFileDuplicateKeysRefused(t *testing.T) {
	for name, doc := range map[string]string{
		"args.yaml": "learning_rate: 0.1\nnum_train_epochs: 2\nlearning_rate: 0.001\n",
		"args.json": "{\"learning_rate\": 0.1,\n \"learning_rate\": 0.001}\n",
		"kw.yaml":   "lr_scheduler_kwargs: {power: 2, power: 3}\n",
	} {
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, []byte(doc), 0o644)
		a := DefaultArguments()
		err := a.LoadConfigFile(p)
		if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "twice") && !strings.Contains(err.Error(), "already defined") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
