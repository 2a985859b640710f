package ortdecoder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

type fixtureCase struct {
	Name            string                     `json:"name"`
	Kwargs          map[string]json.RawMessage `json:"kwargs"`
	Batch           string                     `json:"batch"`
	Sequences       [][]int64                  `json:"sequences"`
	SequencesScores []float64                  `json:"sequences_scores"`
}

type fixtureRefs struct {
	Versions map[string]string `json:"versions"`
	Models   map[string]struct {
		Sources map[string][][]int64 `json:"sources"`
		Cases   []fixtureCase        `json:"cases"`
	} `json:"models"`
}

func openEnv(t *testing.T) *onnxrt.Env {
	t.Helper()
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	return env
}

func loadFixtureRefs(t *testing.T) fixtureRefs {
	t.Helper()
	data, err := os.ReadFile(testenv.Testdata(t, "generate", "fixtures", "refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var refs fixtureRefs
	if err := json.Unmarshal(data, &refs); err != nil {
		t.Fatal(err)
	}
	return refs
}

type namedDecoder struct {
	name string
	dec  generate.Decoder
}

func openDecoders(t *testing.T, env *onnxrt.Env, dir string, pad int64) []namedDecoder {
	t.Helper()
	kv, err := OpenKV(env, dir, pad, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	if !kv.permuteRows || kv.inGraphReorder || !kv.inPlace || !kv.sharedSources {
		t.Fatalf("%s: CPU decoding permutes the cache's rows in place: %v, in-graph reorder %v, attends over the cache in place %v, shares sources %v", dir, kv.permuteRows, kv.inGraphReorder, kv.inPlace, kv.sharedSources)
	}
	host, err := OpenKV(env, dir, pad, Options{HostReorder: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	rc, err := NewRecompute(env, filepath.Join(dir, FullModelFile), pad, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	// the searches picking tokens in Go from the full logits (the reference path)
	hostSel, err := OpenKV(env, dir, pad, Options{HostSelect: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostSel.Close() })
	// the decoding head on the (stand-in) device
	sel, err := OpenKV(env, dir, pad, Options{Device: "standin"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sel.Close() })
	if !sel.inGraphReorder || sel.permuteRows {
		t.Fatalf("%s: a device's cache is reordered in the graph: %v, permuted in place %v", dir, sel.inGraphReorder, sel.permuteRows)
	}
	return []namedDecoder{{"kv", kv}, {"kv-host-select", hostSel}, {"recompute", rc}, {"kv-host-reorder", host}, {"kv-device-select", sel}}
}

// TestFixturesMatchHF generates with the tiny T5, BART and Marian fixtures
// through both decoders and compares with HF generate() token for token.
func TestFixturesMatchHF(t *testing.T) {
	env := openEnv(t)
	refs := loadFixtureRefs(t)
	total, bad := 0, 0
	for model, m := range refs.Models {
		dir := testenv.Testdata(t, "models", model)
		base, err := generate.LoadConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, nd := range openDecoders(t, env, dir, base.PadTokenID) {
			for _, c := range m.Cases {
				total++
				ok := t.Run(model+"/"+nd.name+"/"+c.Name, func(t *testing.T) {
					cfg := base
					if err := cfg.ApplyJSON(c.Kwargs); err != nil {
						t.Fatal(err)
					}
					out, err := generate.Generate(context.Background(), nd.dec, m.Sources[c.Batch], cfg)
					if err != nil {
						t.Fatal(err)
					}
					if len(out.Sequences) != len(c.Sequences) {
						t.Fatalf("%d sequences, HF %d", len(out.Sequences), len(c.Sequences))
					}
					for i := range c.Sequences {
						if fmt.Sprint(out.Sequences[i]) != fmt.Sprint(c.Sequences[i]) {
							t.Errorf("row %d:\n got %v\nwant %v", i, out.Sequences[i], c.Sequences[i])
						}
					}
					for i, want := range c.SequencesScores {
						if d := math.Abs(float64(out.Scores[i]) - want); d > 1e-4 {
							t.Errorf("row %d: score %v, HF %v", i, out.Scores[i], want)
						}
					}
				})
				if !ok {
					bad++
				}
			}
		}
	}
	t.Logf("%d fixture cases (models × decoders × options × batches), %d mismatched; references from transformers %s", total, bad, refs.Versions["transformers"])
}

// TestDecodersHonourCancellation: a cancelled context stops every decoder
// before its next ONNX Runtime run, with the context's error.
func TestDecodersHonourCancellation(t *testing.T) {
	env := openEnv(t)
	dir := testenv.Testdata(t, "models", "t5-tiny")
	for _, nd := range openDecoders(t, env, dir, 0) {
		ctx, cancel := context.WithCancel(context.Background())
		st, err := nd.dec.Start(ctx, [][]int64{{5, 6, 1}})
		if err != nil {
			t.Fatalf("%s: %v", nd.name, err)
		}
		if _, err := st.Step(ctx, [][]int64{{0}}); err != nil {
			t.Fatalf("%s: %v", nd.name, err)
		}
		cancel()
		if _, err := st.Step(ctx, [][]int64{{0, 5}}); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Step after cancel: %v", nd.name, err)
		}
		st.Close()
		if _, err := nd.dec.Start(ctx, [][]int64{{5, 6, 1}}); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Start after cancel: %v", nd.name, err)
		}
	}
}
