package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ortrain/ortrain/internal/testenv"
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
