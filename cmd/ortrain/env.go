package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	goruntime "runtime"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/internal/collective/nccl"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/ortlib"
)

type envReport struct {
	OrtrainVersion string   `json:"ortrain_version"`
	Library        string   `json:"library"`
	LibraryVersion string   `json:"library_version"`
	PinnedVersion  string   `json:"pinned_version"`
	Providers      []string `json:"providers"`
	CUDAProvider   string   `json:"cuda_provider"`
	NCCL           string   `json:"nccl"`
	CPUModel       string   `json:"cpu_model"`
	CPUFeatures    []string `json:"cpu_features"`
	LogicalCPUs    int      `json:"logical_cpus"`
	GOMAXPROCS     int      `json:"gomaxprocs"`
	Threads        string   `json:"threads"`
}

func newEnvCommand() *cli.Command {
	return &cli.Command{
		Name:  "env",
		Usage: "show the ONNX Runtime library, its providers, CPU features and thread settings",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *cli.Context) error {
			env, err := openRuntime(c)
			if err != nil {
				return err
			}
			defer env.Close()
			providers, err := env.Providers()
			if err != nil {
				return err
			}
			model, features := cpuInfo()
			r := envReport{
				OrtrainVersion: Version, Library: env.Path(), LibraryVersion: env.Version(), PinnedVersion: ortlib.Version,
				Providers: providers, CPUModel: model, CPUFeatures: features,
				LogicalCPUs: goruntime.NumCPU(), GOMAXPROCS: goruntime.GOMAXPROCS(0),
				Threads:      "intra-op and inter-op threads default to ONNX Runtime's choice (one per physical core); set them with --threads",
				CUDAProvider: cudaProviderState(env.Path()),
				NCCL:         ncclState(),
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "ortrain          %s\n", r.OrtrainVersion)
			fmt.Fprintf(w, "onnxruntime      %s (pinned %s)\n", r.LibraryVersion, r.PinnedVersion)
			fmt.Fprintf(w, "library          %s\n", r.Library)
			fmt.Fprintf(w, "providers        %s\n", strings.Join(r.Providers, ", "))
			fmt.Fprintf(w, "cuda provider    %s\n", r.CUDAProvider)
			fmt.Fprintf(w, "nccl             %s\n", r.NCCL)
			fmt.Fprintf(w, "cpu              %s\n", r.CPUModel)
			fmt.Fprintf(w, "cpu features     %s\n", strings.Join(r.CPUFeatures, " "))
			fmt.Fprintf(w, "logical cpus     %d (GOMAXPROCS %d)\n", r.LogicalCPUs, r.GOMAXPROCS)
			fmt.Fprintf(w, "threads          %s\n", r.Threads)
			return nil
		},
	}
}

// cudaProviderState says whether the CUDA provider libraries sit beside the
// core library (the CPU build lists CUDAExecutionProvider without them).
func cudaProviderState(lib string) string {
	dir := lib[:strings.LastIndex(lib, "/")+1]
	if _, err := os.Stat(dir + "libonnxruntime_providers_cuda.so"); err != nil {
		return "not installed (no libonnxruntime_providers_cuda.so beside the library)"
	}
	return "installed beside the library"
}

// ncclState says which NCCL several processes on CUDA would use (loading
// it needs no GPU).
func ncclState() string {
	if nccl.Disabled() {
		return "off ($" + onnxrt.NCCLLibEnvVar + "=" + nccl.Off + ": gradients on a GPU are averaged through host memory over MPI)"
	}
	n, err := onnxrt.LoadNCCL("", "")
	if err != nil {
		return "unavailable (needed only by several processes on CUDA): " + err.Error()
	}
	return fmt.Sprintf("%s (%s)", n.Version(), n.Path())
}

// cpuInfo reads the model name and the SIMD features ONNX Runtime's CPU
// kernels use, from /proc/cpuinfo where it exists.
func cpuInfo() (string, []string) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return goruntime.GOARCH, nil
	}
	defer f.Close()
	interesting := map[string]bool{"sse4_2": true, "avx": true, "avx2": true, "fma": true, "f16c": true,
		"avx512f": true, "avx512bw": true, "avx512vl": true, "avx512_vnni": true, "avx512_bf16": true,
		"avx_vnni": true, "amx_tile": true, "amx_bf16": true, "amx_int8": true, "asimd": true, "sve": true}
	model := ""
	var feats []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case k == "model name" && model == "":
			model = v
		case (k == "flags" || k == "Features") && feats == nil:
			for _, fl := range strings.Fields(v) {
				if interesting[fl] {
					feats = append(feats, fl)
				}
			}
		}
	}
	return model, feats
}
