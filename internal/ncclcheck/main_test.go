package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// TestDryRun runs the check on the stand-in device with the stand-in NCCL:
// everything the GPU host will run except the real library and GPU.
func TestDryRun(t *testing.T) {
	lib, _ := testenv.StandInNCCL(t)
	t.Setenv(onnxrt.NCCLLibEnvVar, lib)
	t.Setenv("ORTRAIN_STANDIN_LOG", filepath.Join(t.TempDir(), "calls.log"))
	r, err := check(testenv.ORTLibrary(t), "standin", 5000, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Exact || len(r.AllReduceMs) != 3 || r.ProcessRanks != 1 || !strings.Contains(r.NCCL, "NCCL 2.30.7") {
		t.Errorf("report: %+v", r)
	}
	if _, err := check(testenv.ORTLibrary(t), "cpu", 10, 1); err == nil || !strings.Contains(err.Error(), "needs a GPU") {
		t.Errorf("--device cpu: %v", err)
	}
}
