package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// TestEnvReportsNCCL: `ortrain env` names the NCCL that several processes
// on CUDA would use, its absence with how to install it, or that it is
// turned off.
func TestEnvReportsNCCL(t *testing.T) {
	lib, _ := testenv.StandInNCCL(t)
	ort := testenv.ORTLibrary(t)
	for _, tc := range []struct{ value, want string }{
		{lib, "nccl             2.30.7 (" + lib + ")"},
		{filepath.Join(t.TempDir(), "libnccl.so.2"), "pip install nvidia-nccl-cu13"},
		{"none", "off ($ORTRAIN_NCCL_LIB=none"},
	} {
		t.Setenv(onnxrt.NCCLLibEnvVar, tc.value)
		code, out, errOut := runCLI(t, "--ort-lib", ort, "env")
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("$ORTRAIN_NCCL_LIB=%s: exit %d, want %q in\n%s%s", tc.value, code, tc.want, out, errOut)
		}
	}
}
