package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// standInBuilt: the stand-in libraries are built once per test process.
// The dynamic loader knows a library by its soname, so a second build in
// another folder would be half-shadowed by the first.
var standInBuilt struct {
	once         sync.Once
	nccl, driver string
	err          error
}

// StandInNCCL builds the stand-in NCCL and CUDA driver of
// testdata/standin with gcc and returns the paths of its libnccl.so.2 and
// libcuda.so.1: tests of the NCCL path on hosts without a GPU load them in
// place of the real ones, and read the calls they record from the file
// named by $ORTRAIN_STANDIN_LOG. The build goes to a folder of the
// temporary directory named by the sources' hash, reused by later runs.
func StandInNCCL(t testing.TB) (nccl, driver string) {
	t.Helper()
	src := Testdata(t, "standin")
	b := &standInBuilt
	b.once.Do(func() { b.nccl, b.driver, b.err = buildStandIn(src) })
	if b.err != nil {
		t.Fatalf("building the stand-in NCCL: %v", b.err)
	}
	return b.nccl, b.driver
}

func buildStandIn(src string) (nccl, driver string, err error) {
	if _, err := exec.LookPath("gcc"); err != nil {
		return "", "", fmt.Errorf("gcc is needed: %w", err)
	}
	h := sha256.New()
	for _, f := range []string{"cuda.c", "nccl.c"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", "", err
		}
		h.Write(b)
	}
	dir := filepath.Join(os.TempDir(), "ortrain-standin-nccl-"+hex.EncodeToString(h.Sum(nil))[:16])
	driver, nccl = filepath.Join(dir, "libcuda.so.1"), filepath.Join(dir, "libnccl.so.2")
	if _, err := os.Stat(nccl); err == nil {
		return nccl, driver, nil
	}
	// Built in a private folder, then renamed into place: test processes
	// of several packages may build at once.
	tmp, err := os.MkdirTemp(os.TempDir(), "ortrain-standin-build-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp)
	for _, cmd := range [][]string{
		{"gcc", "-shared", "-fPIC", "-o", filepath.Join(tmp, "libcuda.so.1"), filepath.Join(src, "cuda.c"), "-lpthread"},
		// Linked to the stand-in driver, whose state it shares (found
		// through the final folder, where both will be).
		{"gcc", "-shared", "-fPIC", "-o", filepath.Join(tmp, "libnccl.so.2"), filepath.Join(src, "nccl.c"),
			"-L" + tmp, "-l:libcuda.so.1", "-Wl,-rpath," + dir, "-lpthread"},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("%v\n%s", err, out)
		}
	}
	if err := os.Rename(tmp, dir); err != nil && !os.IsExist(err) {
		if _, serr := os.Stat(nccl); serr != nil { // not another process's build
			return "", "", err
		}
	}
	return nccl, driver, nil
}
