// Package testenv finds what tests need outside the package folder: the
// repository root, the real tokenizers and corpora (committed under
// testdata/realdata, in full in ../shared/data when present) and the ONNX
// Runtime library.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ortrain/ortrain/internal/ortlib"
)

// RepoRoot walks up from the working directory to the folder holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the test's folder")
		}
		dir = parent
	}
}

// Testdata returns a path under the repository's testdata folder.
func Testdata(t testing.TB, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{RepoRoot(t), "testdata"}, elem...)...)
}

// RealData returns a path under testdata/realdata: the real tokenizers and
// samples of the real corpora of ../shared/data, committed so that a clone
// without that folder runs every test (see testdata/realdata/README.md). A
// missing path fails the test; it never skips.
func RealData(t testing.TB, elem ...string) string {
	t.Helper()
	p := Testdata(t, append([]string{"realdata"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("committed test data missing: %v", err)
	}
	return p
}

// FullData returns a path under the full data folder ../shared/data beside
// the repository and whether it exists. It is optional: tests that gain from
// more data use it when present and RealData otherwise. ORTRAIN_FULL_DATA=0
// makes it absent, to run those tests on the committed sample.
func FullData(t testing.TB, elem ...string) (string, bool) {
	t.Helper()
	if os.Getenv("ORTRAIN_FULL_DATA") == "0" {
		return "", false
	}
	root := filepath.Join(filepath.Dir(RepoRoot(t)), "shared", "data")
	p := filepath.Join(append([]string{root}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		return "", false
	}
	return p, true
}

// CorpusRoot returns the folder holding translation/ and summarization/: the
// full corpora of ../shared/data when present, else the committed sample,
// which has the same layout and file names. full tells which.
func CorpusRoot(t testing.TB) (root string, full bool) {
	t.Helper()
	if p, ok := FullData(t); ok {
		return p, true
	}
	return RealData(t), false
}

// InCI reports whether the tests run under CI, where nothing may be skipped
// for want of ONNX Runtime.
func InCI() bool { return os.Getenv("CI") == "true" }

// ORTLibrary returns the ONNX Runtime library path. Without one the test
// fails under CI and is skipped elsewhere, with the command that fixes it.
func ORTLibrary(t testing.TB) string {
	t.Helper()
	p, err := ortlib.Find("")
	if err != nil {
		if InCI() {
			t.Fatalf("CI requires ONNX Runtime: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
	return p
}

// MPIRun returns the command that starts n processes under Open MPI's
// mpirun (oversubscribed: CI machines may have fewer cores), to which the
// program and its arguments are appended. Without mpirun the test fails
// under CI and is skipped elsewhere, with the command that fixes it.
func MPIRun(t testing.TB, n int) []string {
	t.Helper()
	p, err := exec.LookPath("mpirun")
	if err != nil {
		if InCI() {
			t.Fatalf("CI requires Open MPI (apt-get install openmpi-bin libopenmpi-dev): %v", err)
		}
		t.Skipf("skipping: no mpirun (apt-get install openmpi-bin libopenmpi-dev): %v", err)
	}
	// Containers often forbid the cross-memory attach vader uses by default.
	cmd := []string{p, "-np", strconv.Itoa(n), "--oversubscribe", "--mca", "btl", "self,vader,tcp", "--mca", "btl_vader_single_copy_mechanism", "none"}
	if os.Geteuid() == 0 {
		cmd = append(cmd, "--allow-run-as-root")
	}
	return cmd
}
