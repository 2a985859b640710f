package mpi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ortrain/ortrain/internal/collective"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// roleEnv tells a copy of the test binary started by mpirun which rank
// program to run (see TestMain).
const roleEnv = "ORTRAIN_MPI_TEST_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(rankMain(role))
	}
	os.Exit(m.Run())
}

// rankMain is one rank's program; it prints "rank R ok" on success and the
// error (exit status 1) otherwise.
func rankMain(role string) int {
	opts := Options{}
	if role == "hang" || role == "busy" {
		opts = Options{Timeout: 2 * time.Second, Grace: time.Second}
	}
	c, err := Open(opts)
	if err == nil {
		err = rankPrograms[role](c)
	}
	if err == nil {
		err = c.Close()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rank error: %v\n", err)
		return 1
	}
	fmt.Printf("rank %d ok\n", c.Rank())
	return 0
}

var rankPrograms = map[string]func(c *Comm) error{
	"ops": func(c *Comm) error {
		r, n := c.Rank(), c.Size()
		check := func(what string, ok bool, got any) error {
			if !ok {
				return fmt.Errorf("rank %d: %s: got %v", r, what, got)
			}
			return nil
		}
		f32 := []float32{float32(r + 1), 0.5 * float32(r), -1}
		if err := c.AllReduceFloat32(f32, collective.Sum); err != nil {
			return err
		}
		if err := check("float32 sum", slices.Equal(f32, []float32{3, 0.5, -2}), f32); err != nil {
			return err
		}
		f64 := []float64{float64(r), -float64(r), 1e300}
		if err := c.AllReduceFloat64(f64, collective.Max); err != nil {
			return err
		}
		if err := check("float64 max", slices.Equal(f64, []float64{1, 0, 1e300}), f64); err != nil {
			return err
		}
		avg := []float32{float32(2 * r), 1}
		if err := collective.AverageFloat32(c, avg); err != nil {
			return err
		}
		if err := check("average", slices.Equal(avg, []float32{1, 1}), avg); err != nil {
			return err
		}
		b := []byte(fmt.Sprintf("from rank %d", r))
		if err := c.Broadcast(b, 1); err != nil {
			return err
		}
		if err := check("broadcast", string(b) == "from rank 1", string(b)); err != nil {
			return err
		}
		// Payloads of different lengths, one of them empty.
		all, err := c.AllGather(bytes.Repeat([]byte{byte('a' + r)}, 1000*r))
		if err != nil {
			return err
		}
		if err := check("all-gather", len(all) == n && len(all[0]) == 0 && bytes.Equal(all[1], bytes.Repeat([]byte{'b'}, 1000)), len(all)); err != nil {
			return err
		}
		if err := c.Barrier(); err != nil {
			return err
		}
		if err := collective.CheckSame(c, "arguments", []byte("same")); err != nil {
			return err
		}
		err = collective.CheckSame(c, "arguments", []byte{byte(r)})
		return check("mismatch", err != nil && strings.Contains(err.Error(), "rank 1's arguments differs from rank 0's"), err)
	},
	// Rank 1 stops (SIGSTOP: alive to the launcher, silent to MPI): rank 0
	// must name it after its timeout and grace.
	"hang": func(c *Comm) error {
		if c.Rank() == 1 {
			_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		}
		return c.Barrier()
	},
	// Rank 1 is slow but alive: rank 0's probe hears it and keeps waiting.
	"busy": func(c *Comm) error {
		if c.Rank() == 1 {
			time.Sleep(5 * time.Second)
		}
		return c.Barrier()
	},
	// Rank 1 dies: the launcher ends the job and names it.
	"kill": func(c *Comm) error {
		if err := c.Barrier(); err != nil {
			return err
		}
		if c.Rank() == 1 {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		return c.Barrier()
	},
}

// mpirun runs this test binary as 2 ranks of role and returns the exit
// status, the output and the time taken.
func mpirun(t *testing.T, role string, limit time.Duration) (int, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	args := append(testenv.MPIRun(t, 2), os.Args[0], "-test.run=^$")
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("%s: still running after %s (a silent hang):\n%s", role, limit, out)
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("%s: %v", role, err)
		}
		code = ee.ExitCode()
	}
	return code, string(out), took
}

func TestOperationsUnderMPIRun(t *testing.T) {
	code, out, _ := mpirun(t, "ops", 2*time.Minute)
	if code != 0 || !strings.Contains(out, "rank 0 ok") || !strings.Contains(out, "rank 1 ok") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
}

func TestHungRankIsNamed(t *testing.T) {
	code, out, took := mpirun(t, "hang", 2*time.Minute)
	t.Logf("exit %d after %s:\n%s", code, took, out)
	if code == 0 || !strings.Contains(out, "rank 1 does not answer") || !strings.Contains(out, "rank 0 waited") {
		t.Fatalf("want a non-zero exit naming rank 1, got exit %d:\n%s", code, out)
	}
}

func TestSlowRankIsWaitedFor(t *testing.T) {
	code, out, took := mpirun(t, "busy", 2*time.Minute)
	if code != 0 || !strings.Contains(out, "rank 0 ok") || !strings.Contains(out, "rank 1 ok") {
		t.Fatalf("exit %d after %s:\n%s", code, took, out)
	}
}

func TestDeadRankIsNamed(t *testing.T) {
	code, out, took := mpirun(t, "kill", 2*time.Minute)
	t.Logf("exit %d after %s:\n%s", code, took, out)
	if code == 0 || !strings.Contains(out, "rank 1") {
		t.Fatalf("want a non-zero exit naming rank 1, got exit %d:\n%s", code, out)
	}
}

func TestProbeMessageRoundTrip(t *testing.T) {
	want := message{rank: 3, round: 7, kind: opAllGather, seq: 1<<40 + 5}
	b := make([]byte, messageSize)
	want.put(b)
	if got := readMessage(b); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestLaunched(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want int
	}{
		{map[string]string{}, 0},
		{map[string]string{"OMPI_COMM_WORLD_SIZE": "4"}, 4},
		{map[string]string{"PMI_SIZE": "2"}, 2},
		{map[string]string{"PMIX_RANK": "0", "SLURM_NTASKS": "8"}, 8},
		{map[string]string{"PMI_SIZE": "x"}, 0},
	} {
		for _, k := range []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "PMIX_RANK", "SLURM_NTASKS"} {
			t.Setenv(k, tc.env[k])
		}
		if got := Launched(); got != tc.want {
			t.Errorf("%v: got %d, want %d", tc.env, got, tc.want)
		}
	}
}

// Without a usable MPI library Open fails with ErrMPIUnavailable, saying
// what was tried and how to install one. (MPI loads once per process: the
// failure is kept, which is harmless here, since only the ranks started by
// mpirun open MPI.)
func TestOpenWithoutMPIFailsClearly(t *testing.T) {
	_, err := Open(Options{Library: filepath.Join(t.TempDir(), "libmpi.so.40")})
	if !errors.Is(err, onnxrt.ErrMPIUnavailable) || !errors.Is(err, fault.Runtime) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"libmpi.so.40", "apt-get install openmpi-bin", onnxrt.MPILibEnvVar} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}
