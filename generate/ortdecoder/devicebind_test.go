package ortdecoder

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// TestKVKeepsFedBackValuesOnDevice checks that the KV decoder binds the
// outputs it only feeds back into ONNX Runtime (last_hidden_state,
// present.*) to the session's device and only the logits to the host, that
// the kept values never pass through Go memory (not even when rows are
// gathered), and that decoding gives the same tokens and scores, bit for
// bit, as the host path (every output in host memory, rows gathered in Go).
func TestKVKeepsFedBackValuesOnDevice(t *testing.T) {
	env := openEnv(t)
	for _, model := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		dir := testenv.Testdata(t, "models", model)
		base, err := generate.LoadConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		open := func(opts Options) *KV {
			kv, err := OpenKV(env, dir, base.PadTokenID, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { kv.Close() })
			return kv
		}
		dev := open(Options{HostSelect: true}) // the logits to the host: compared bit for bit with the host path
		// on the CPU the cache's rows are permuted in place, in the
		// sessions' memory; the stand-in device's in-graph reorder is
		// checked by TestFixturesMatchHF
		if dev.hostOutputs || len(dev.gatherers) == 0 || !dev.permuteRows || dev.inGraphReorder || !dev.inPlace || !dev.sharedSources {
			t.Fatalf("%s: default KV has hostOutputs %v, %d gather graphs, rows permuted in place %v, in-graph reorder %v, attends in place %v",
				model, dev.hostOutputs, len(dev.gatherers), dev.permuteRows, dev.inGraphReorder, dev.inPlace)
		}
		bound := map[string]map[string]bool{} // graph → output → on the device
		dev.traceBind = func(graph, output string, onDevice bool) {
			if bound[graph] == nil {
				bound[graph] = map[string]bool{}
			}
			if prev, ok := bound[graph][output]; ok && prev != onDevice {
				t.Errorf("%s: %s output %q bound to the device in one run and not in another", model, graph, output)
			}
			bound[graph][output] = onDevice
		}
		// every output in host memory
		host := open(Options{HostSelect: true})
		host.hostOutputs = true
		// device values without the in-graph reorder or the permutation in
		// place: the decoder cache is gathered by the gather graph
		plain := open(Options{HostReorder: true, HostSelect: true})
		plain.hostOutputs = false
		if plain.gatherers, err = openGatherers(env, plain.fedBackTypes(), onnxrt.SessionOptions{}); err != nil {
			t.Fatal(err)
		}

		sources := randomSources(12, 4, 48, base.EOSTokenIDs[0], uint64(len(model))+7)
		for _, kw := range []string{`{}`, `{"num_return_sequences": 2, "do_sample": true, "top_k": 20}`, `{"num_beams": 4}`, `{"num_beams": 5, "num_return_sequences": 3, "length_penalty": 0.6}`} {
			var m map[string]json.RawMessage
			_ = json.Unmarshal([]byte(kw), &m)
			cfg := base
			if err := cfg.ApplyJSON(m); err != nil {
				t.Fatal(err)
			}
			want, err := generate.Generate(context.Background(), host, sources, cfg)
			if err != nil {
				t.Fatalf("%s %s host path: %v", model, kw, err)
			}
			for name, d := range map[string]*KV{"device": dev, "device-no-in-graph-reorder": plain} {
				got, err := generate.Generate(context.Background(), d, sources, cfg)
				if err != nil {
					t.Fatalf("%s %s %s: %v", model, kw, name, err)
				}
				if !reflect.DeepEqual(got.Sequences, want.Sequences) || !reflect.DeepEqual(got.Scores, want.Scores) {
					t.Errorf("%s %s: %s path differs from the host path:\n got %v %v\nwant %v %v", model, kw, name, got.Sequences, got.Scores, want.Sequences, want.Scores)
				}
			}
		}

		for _, graph := range []string{"encoder", "decoder", "decoder_with_past"} {
			outs := bound[graph]
			if len(outs) == 0 {
				t.Errorf("%s: no run of the %s graph was seen", model, graph)
			}
			for name, onDevice := range outs {
				wantDevice := name == "last_hidden_state" || strings.HasPrefix(name, "present.")
				if onDevice != wantDevice {
					t.Errorf("%s: %s output %q bound to the device: %v, want %v", model, graph, name, onDevice, wantDevice)
				}
			}
		}
		if !bound["encoder"]["last_hidden_state"] || bound["decoder_with_past"]["logits"] {
			t.Errorf("%s: encoder outputs %v, decoder_with_past outputs %v", model, bound["encoder"], bound["decoder_with_past"])
		}

		// the kept values, after steps and reorders that change the rows'
		// sources, are ONNX Runtime values on the session's device that were
		// never copied to Go memory
		for name, d := range map[string]*KV{"device": dev, "device-no-in-graph-reorder": plain} {
			st, err := d.Start(context.Background(), sources[:3])
			if err != nil {
				t.Fatal(err)
			}
			s := st.(*kvState)
			prefixes := [][]int64{{0}, {0}, {0}, {0}, {0}, {0}}
			if err := s.Reorder([]int{0, 0, 1, 1, 2, 2}); err != nil {
				t.Fatal(err)
			}
			for step := range 3 {
				if _, err := s.Step(context.Background(), prefixes); err != nil {
					t.Fatal(err)
				}
				for i := range prefixes {
					prefixes[i] = append(prefixes[i], int64(5+i+step))
				}
			}
			if err := s.Reorder([]int{3, 2, 5, 4}); err != nil { // drops source 0, swaps beams
				t.Fatal(err)
			}
			prefixes = [][]int64{prefixes[3], prefixes[2], prefixes[5], prefixes[4]}
			if _, err := s.Step(context.Background(), prefixes); err != nil {
				t.Fatal(err)
			}
			if err := s.Reorder([]int{1, 1, 2, 3}); err != nil {
				t.Fatal(err)
			}
			kept := map[string]*cached{"encoder_hidden_states": s.hidden}
			for n, c := range s.encPast {
				kept[n] = c
			}
			for n, c := range s.decPast {
				kept[n] = c
			}
			if len(s.encPast) == 0 || len(s.decPast) == 0 {
				t.Fatalf("%s %s: %d encoder and %d decoder cache tensors", model, name, len(s.encPast), len(s.decPast))
			}
			for n, c := range kept {
				if c.host != nil || c.val == nil {
					t.Errorf("%s %s: %s went through Go memory (host copy %v, value %v)", model, name, n, c.host != nil, c.val != nil)
					continue
				}
				if c.val.Device() != d.past.Device() {
					t.Errorf("%s %s: %s lives on %v, the session runs on %v", model, name, n, c.val.Device(), d.past.Device())
				}
				switch rows := c.val.Shape()[0]; {
				case isEncoderPast(n) && d.sharedSources:
					// a row per source of the last step's rows (sources 1 and 2)
					if rows != 2 || !slices.Equal(s.encSrc, []int{1, 2}) {
						t.Errorf("%s %s: %s has %d rows for sources %v after the reorder, want 2 for [1 2]", model, name, n, rows, s.encSrc)
					}
				case n == "encoder_hidden_states" || isEncoderPast(n) || !d.inGraphReorder:
					if rows != 4 {
						t.Errorf("%s %s: %s has %d rows after the reorder, want 4", model, name, n, rows)
					}
				}
			}
			s.Close()
		}
	}
}
