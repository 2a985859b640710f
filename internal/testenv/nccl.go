package testenv

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// StandInNCCL builds the stand-in NCCL and CUDA driver of
// testdata/standin with gcc into a temporary folder and returns the paths
// of its libnccl.so.2 and libcuda.so.1: tests of the NCCL path on hosts
// without a GPU load them in place of the real ones, and read the calls
// they record from the file named by $ORTRAIN_STANDIN_LOG.
func StandInNCCL(t testing.TB) (nccl, driver string) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatalf("gcc is needed to build the stand-in NCCL: %v", err)
	}
	src := Testdata(t, "standin")
	dir := t.TempDir()
	driver, nccl = filepath.Join(dir, "libcuda.so.1"), filepath.Join(dir, "libnccl.so.2")
	for _, cmd := range [][]string{
		{"gcc", "-shared", "-fPIC", "-o", driver, filepath.Join(src, "cuda.c"), "-lpthread"},
		// Linked to the stand-in driver, whose state it shares; loading the
		// driver by its path later gives the same library.
		{"gcc", "-shared", "-fPIC", "-o", nccl, filepath.Join(src, "nccl.c"), "-L" + dir, "-l:libcuda.so.1", "-Wl,-rpath," + dir, "-lpthread"},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("building the stand-in NCCL: %v\n%s", err, out)
		}
	}
	return nccl, driver
}
