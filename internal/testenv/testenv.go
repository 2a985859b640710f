// Package testenv finds what tests need outside the package folder: the
// repository root, the shared data folder and the ONNX Runtime library.
package testenv

import (
	"os"
	"path/filepath"
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

// SharedData returns a path under ../shared/data beside the repository. In a
// clone without that folder the test is skipped with a message saying so.
func SharedData(t testing.TB, elem ...string) string {
	t.Helper()
	root := filepath.Join(filepath.Dir(RepoRoot(t)), "shared", "data")
	p := filepath.Join(append([]string{root}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("needs the shared data folder %s (present beside the repository in CI): %v", p, err)
	}
	return p
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
