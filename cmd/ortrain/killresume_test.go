package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ortrain/ortrain/internal/testenv"
)

// The demo run killed with SIGKILL at seeded moments, each followed by a
// resume: every resumed run must end bit-identical to an uninterrupted one,
// and no incomplete checkpoint may ever be visible under its final name.
//
// In CI it kills a short demo (one epoch) three times: at a random moment,
// during a checkpoint rotation and during the final save.
// scripts/kill-resume-demo.sh runs the same test on the full demo with 50
// kills (ORTRAIN_KILLS, ORTRAIN_KILL_FULL_DEMO, ORTRAIN_KILL_SEED).
func TestKillResumeDemo(t *testing.T) {
	if os.Getenv("ORTRAIN_CLI_CHILD") != "" {
		os.Exit(runInterruptible(append([]string{"ortrain"}, strings.Split(os.Getenv("ORTRAIN_CLI_CHILD"), "\n")...), strings.NewReader(""), os.Stdout, os.Stderr, interruptGrace))
	}
	kills, _ := strconv.Atoi(os.Getenv("ORTRAIN_KILLS"))
	if kills <= 0 {
		kills = 3
	}
	seed, _ := strconv.ParseUint(os.Getenv("ORTRAIN_KILL_SEED"), 10, 64)
	full := os.Getenv("ORTRAIN_KILL_FULL_DEMO") == "1"
	lib := testenv.ORTLibrary(t)
	args := func(out string, resume bool) []string {
		a := []string{"--ort-lib", lib, "train", "--demo", "--no-progress", "--output_dir", out}
		if !full {
			a = append(a, "--num_train_epochs", "1")
		}
		if resume {
			a = append(a, "--resume_from_checkpoint", "true")
		}
		return a
	}
	root := t.TempDir()
	ref := filepath.Join(root, "ref")
	start := time.Now()
	if code, stderr := runChild(t, args(ref, false), nil); code != 0 {
		t.Fatalf("uninterrupted run: exit %d: %s", code, stderr)
	}
	refTime := time.Since(start)
	want := finalState(t, ref)
	t.Logf("uninterrupted run: %v, %d checkpoints kept", refTime.Round(time.Millisecond), len(checkpointDirs(ref)))

	r := rand.New(rand.NewPCG(seed, 0x6b696c6c))
	schedule := []string{"time", "rotation", "final-save"}
	for len(schedule) < kills {
		switch k := r.IntN(10); {
		case k < 6:
			schedule = append(schedule, "time")
		case k < 8:
			schedule = append(schedule, "rotation")
		case k < 9:
			schedule = append(schedule, "checkpoint-save")
		default:
			schedule = append(schedule, "final-save")
		}
	}
	schedule = schedule[:kills]
	summary := map[string]int{}
	for i, moment := range schedule {
		out := filepath.Join(root, fmt.Sprint("run-", i))
		os.MkdirAll(out, 0o755)
		trig := trigger{moment: moment}
		switch moment {
		case "time": // within the run, however its length varies
			trig.after = time.Duration(r.Int64N(int64(refTime) * 85 / 100))
		case "rotation", "checkpoint-save":
			trig.nth = 1 // the fixed first kills: the first rotation
			if i >= 3 && full {
				trig.nth = 1 + r.IntN(5) // of the full demo's 7 rotations, 10 saves
			}
		}
		code, stderr := runChild(t, args(out, false), &trig)
		if code != -1 {
			// the run ended before the moment came (a late time, a rotation
			// that does not happen): it must have ended well
			if code != 0 {
				t.Fatalf("kill %d (%s): the run ended with %d before the kill: %s", i, trig, code, stderr)
			}
			summary["ended before the moment"]++
			continue
		}
		checkCheckpointsComplete(t, out, fmt.Sprintf("kill %d (%s)", i, trig))
		resume := len(checkpointDirs(out)) > 0
		if code, stderr := runChild(t, args(out, resume), nil); code != 0 {
			t.Fatalf("kill %d (%s): the resumed run (resume=%v) exits %d: %s", i, trig, resume, code, stderr)
		}
		if got := finalState(t, out); got != want {
			t.Errorf("kill %d (%s): the resumed run ends differently (resume=%v):\n%s\nwant\n%s", i, trig, resume, got, want)
		} else {
			summary[moment]++
		}
		checkCheckpointsComplete(t, out, fmt.Sprintf("kill %d (%s), resumed", i, trig))
		os.RemoveAll(out)
	}
	t.Logf("%d kills, resumed bit-identical: %v", len(schedule), summary)
}

// trigger is the moment a run is killed: after a time, or when the n-th
// file of a kind appears in the output folder (seen through inotify).
type trigger struct {
	moment string
	after  time.Duration
	nth    int
	// sig is the signal sent (default SIGKILL); fired is when it was sent.
	sig   syscall.Signal
	fired time.Time
}

func (tr trigger) String() string {
	switch tr.moment {
	case "time":
		return "at " + tr.after.Round(time.Millisecond).String()
	case "rotation":
		return fmt.Sprintf("in rotation %d", tr.nth)
	case "checkpoint-save":
		return fmt.Sprintf("in checkpoint save %d", tr.nth)
	}
	return "in the final save"
}

// matches reports whether a name created in (or moved into) the output
// folder is the trigger's event.
func (tr trigger) matches(name string) bool {
	switch tr.moment {
	case "rotation":
		return strings.HasPrefix(name, ".tmp-del-checkpoint-")
	case "checkpoint-save":
		return strings.HasPrefix(name, ".tmp-checkpoint-")
	case "final-save":
		return name == "model.safetensors.tmp"
	}
	return false
}

// runChild runs the CLI in a child process; with a trigger it SIGKILLs the
// child at that moment and returns -1 if it did.
func runChild(t *testing.T, args []string, trig *trigger) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillResumeDemo$")
	cmd.Env = append(os.Environ(), "ORTRAIN_CLI_CHILD="+strings.Join(args, "\n"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	var watch *inotify
	if trig != nil && trig.moment != "time" {
		w, err := newInotify(args[slices.Index(args, "--output_dir")+1])
		if err != nil {
			t.Fatal(err)
		}
		watch = w
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killed := false
	if trig != nil {
		fire := make(chan struct{})
		if watch != nil {
			go func() {
				seen := 0
				for name := range watch.names {
					if trig.matches(name) {
						if seen++; seen == trig.nth || trig.moment == "final-save" {
							close(fire)
							return
						}
					}
				}
			}()
		} else {
			time.AfterFunc(trig.after, func() { close(fire) })
		}
		select {
		case <-fire:
			sig := trig.sig
			if sig == 0 {
				sig = syscall.SIGKILL
			}
			trig.fired = time.Now()
			cmd.Process.Signal(sig)
			killed = sig == syscall.SIGKILL
		case err := <-done:
			done <- err
		}
	}
	err := <-done
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL && killed {
			return -1, stderr.String()
		}
		return ee.ExitCode(), stderr.String()
	}
	t.Fatal(err)
	return 0, ""
}

var reCheckpointDir = regexp.MustCompile(`^checkpoint-\d+$`)

func checkpointDirs(out string) []string {
	entries, _ := os.ReadDir(out)
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && reCheckpointDir.MatchString(e.Name()) {
			dirs = append(dirs, e.Name())
		}
	}
	return dirs
}

// checkCheckpointsComplete fails on any checkpoint-N folder lacking a file
// a complete checkpoint has.
func checkCheckpointsComplete(t *testing.T, out, when string) {
	t.Helper()
	for _, d := range checkpointDirs(out) {
		for _, f := range []string{"model.safetensors", "optimizer.safetensors", "scheduler.json", "rng_state.json", "data_state.json", "trainer_state.json", "training_args.json", "config.json"} {
			if _, err := os.Stat(filepath.Join(out, d, f)); err != nil {
				t.Errorf("%s: incomplete checkpoint visible: %s lacks %s", when, d, f)
			}
		}
	}
}

// finalState hashes what a run leaves that must not depend on
// interruptions: the final model, every checkpoint kept (weights and
// optimizer state), and the predictions.
func finalState(t *testing.T, out string) string {
	t.Helper()
	var b strings.Builder
	files := []string{"model.safetensors", "generated_predictions.txt"}
	for _, d := range checkpointDirs(out) {
		files = append(files, filepath.Join(d, "model.safetensors"), filepath.Join(d, "optimizer.safetensors"))
	}
	slices.Sort(files)
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", f, err)
			continue
		}
		h := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s %s\n", hex.EncodeToString(h[:8]), f)
	}
	return b.String()
}

// inotify reports the names created in or moved into one folder. Its
// descriptor stays open (a reader blocked on a closed, reused descriptor
// would read someone else's data); a test makes a handful.
type inotify struct {
	fd    int
	names chan string
}

func newInotify(dir string) (*inotify, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	w := &inotify{fd: fd, names: make(chan string, 1024)}
	go func() {
		defer close(w.names)
		buf := make([]byte, 64<<10)
		for {
			n, err := syscall.Read(fd, buf)
			if err != nil || n <= 0 {
				return
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				name := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
				w.names <- string(bytes.TrimRight(name, "\x00"))
				off += syscall.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}()
	return w, nil
}

// SIGINT ends a run within seconds with exit 130, whatever it is doing
// (preparing data, building artifacts, creating sessions, training,
// evaluating, saving, predicting); predict says how far it got and keeps
// those lines.
func TestSIGINTEndsWithin5Seconds(t *testing.T) {
	lib := testenv.ORTLibrary(t)
	root := t.TempDir()
	for i, after := range []time.Duration{300 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second} {
		out := filepath.Join(root, fmt.Sprint("train-", i))
		trig := &trigger{moment: "time", after: after, sig: syscall.SIGINT}
		code, stderr := runChild(t, []string{"--ort-lib", lib, "train", "--demo", "--no-progress", "--output_dir", out, "--num_train_epochs", "1"}, trig)
		took := time.Since(trig.fired)
		if trig.fired.IsZero() {
			t.Logf("train ended before %v", after)
			continue
		}
		if code != exitInterrupted || took > interruptGrace+2*time.Second || !strings.Contains(stderr, "interrupted") || strings.Contains(stderr, "context canceled") {
			t.Errorf("SIGINT at %v: exit %d after %v (want %d, saying it was interrupted): %s", after, code, took, exitInterrupted, stderr)
		}
	}
	model := filepath.Join(root, "t5")
	copyModel(t, model)
	input := filepath.Join(root, "in.txt")
	src, _ := os.ReadFile(testenv.Testdata(t, "generate", "predict", "input.txt"))
	// far more than predict gets through in 3 s (4,800 lines once took
	// longer; since decoding got faster they could finish before the signal)
	os.WriteFile(input, bytes.Repeat(src, 2000), 0o644)
	out := filepath.Join(root, "pred.txt")
	trig := &trigger{moment: "time", after: 3 * time.Second, sig: syscall.SIGINT}
	code, stderr := runChild(t, []string{"--ort-lib", lib, "predict", "--no-progress", "--model", model, "--input", input, "--output", out, "--num-beams", "4"}, trig)
	if trig.fired.IsZero() {
		t.Fatalf("predict ended (exit %d) before the signal at %v: give it more input", code, trig.after)
	}
	if took := time.Since(trig.fired); code != exitInterrupted || took > interruptGrace+2*time.Second || !strings.Contains(stderr, "interrupted after") || !strings.Contains(stderr, "pred.txt.partial") {
		t.Errorf("predict: exit %d after %v: %s", code, took, stderr)
	}
}
