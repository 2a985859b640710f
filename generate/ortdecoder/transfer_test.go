package ortdecoder

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// countingDecoder records what every decoding step copies between host and
// device memory.
type countingDecoder struct {
	generate.Decoder
	env     *onnxrt.Env
	selects bool // offer the state's SelectStep
	steps   []stepTransfers
}

type stepTransfers struct {
	rows int
	onnxrt.Transfers
}

func (d *countingDecoder) Start(ctx context.Context, sources [][]int64) (generate.State, error) {
	s, err := d.Decoder.Start(ctx, sources)
	if err != nil {
		return nil, err
	}
	return &countingState{State: s, d: d}, nil
}

type countingState struct {
	generate.State
	d *countingDecoder
}

func (s *countingState) Step(ctx context.Context, prefixes [][]int64) (generate.Logits, error) {
	before := s.d.env.Transfers()
	l, err := s.State.Step(ctx, prefixes)
	s.d.steps = append(s.d.steps, stepTransfers{len(prefixes), s.d.env.Transfers().Sub(before)})
	return l, err
}

func (s *countingState) Selects() (bool, int) {
	if sel, ok := s.State.(generate.Selector); ok && s.d.selects {
		return sel.Selects()
	}
	return false, 0
}

func (s *countingState) SelectStep(ctx context.Context, prefixes [][]int64, edits generate.Edits, k int) (generate.TopK, error) {
	before := s.d.env.Transfers()
	top, err := s.State.(generate.Selector).SelectStep(ctx, prefixes, edits, k)
	s.d.steps = append(s.d.steps, stepTransfers{len(prefixes), s.d.env.Transfers().Sub(before)})
	return top, err
}

// TestDecodingStepTransfers measures what a decoding step of the KV-cache
// decoder copies on a device (the stand-in device, which counts what a GPU
// run would copy). The key/value cache, the encoder outputs and the
// in-graph reorder stay on the device; the step's new token ids come in.
// On the host path the next-token logits come out, rows × vocabulary
// float32s: t5-small's vocabulary of 32128 makes 128 KiB per row and step.
// With the decoding head, greedy search takes one float32 score and one
// int64 id per row, beam search its k = 2 × num_beams best; the tokens are
// those of the host path, with every processor on.
func TestDecodingStepTransfers(t *testing.T) {
	env := openEnv(t)
	sources := [][]int64{{5, 6, 7, 8, 1}, {9, 10, 1}, {11, 12, 13, 14, 15, 16, 1}}
	for _, model := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		dir := testenv.Testdata(t, "models", model)
		m, err := OpenModel(env, dir, OpenOptions{Options: Options{Device: "standin", IntraOpThreads: 1}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name    string
			beams   int
			selects bool
			perRow  int64 // bytes to the host per row and step
		}{
			{"beam 4, logits to the host", 4, false, int64(m.VocabSize) * 4},
			{"beam 4, decoding head", 4, true, 8 * (4 + 8)}, // HF's beams_to_keep: 2 × 4 per row
			{"greedy, logits to the host", 1, false, int64(m.VocabSize) * 4},
			{"greedy, decoding head", 1, true, 4 + 8},
		} {
			cfg := m.Config
			cfg.NumBeams, cfg.MaxNewTokens, cfg.MinNewTokens = c.beams, 6, 6
			dec := &countingDecoder{Decoder: m.Decoder, env: env, selects: c.selects}
			if _, err := generate.Generate(context.Background(), dec, sources, cfg); err != nil {
				t.Fatal(err)
			}
			var toHost, toDev int64
			for i, s := range dec.steps {
				if want := int64(s.rows) * c.perRow; s.DeviceToHost != want || s.TensorsToHost > 2 {
					t.Errorf("%s, %s, step %d: %d rows, %d bytes in %d tensors to the host, want %d", model, c.name, i, s.rows, s.DeviceToHost, s.TensorsToHost, want)
				}
				toHost += s.DeviceToHost
				toDev += s.HostToDevice
			}
			rows := int64(sumRows(dec.steps))
			t.Logf("%s, %s: %d steps; per step and row %d bytes to the host, %d to the device (vocabulary %d)", model, c.name, len(dec.steps), toHost/rows, toDev/rows, m.VocabSize)
		}

		// the same tokens and scores through the head as on the host, every
		// processor on (greedy: bit for bit; beam search: the log-softmax
		// sums in float32 there, in float64 here)
		for _, kw := range []string{`{}`, `{"repetition_penalty": 1.3, "no_repeat_ngram_size": 2, "min_new_tokens": 3, "bad_words_ids": [[7], [5, 6]]}`,
			`{"encoder_no_repeat_ngram_size": 2, "repetition_penalty": 0.7, "forced_bos_token_id": 3, "forced_eos_token_id": 4, "max_new_tokens": 7}`,
			`{"num_beams": 4}`, `{"num_beams": 3, "num_return_sequences": 2, "repetition_penalty": 1.3, "no_repeat_ngram_size": 2, "min_new_tokens": 3, "bad_words_ids": [[7], [5, 6]]}`,
			`{"num_beams": 4, "encoder_no_repeat_ngram_size": 2, "forced_bos_token_id": 3, "forced_eos_token_id": 4, "max_new_tokens": 7, "length_penalty": 0.6}`} {
			var raw map[string]json.RawMessage
			if err := json.Unmarshal([]byte(kw), &raw); err != nil {
				t.Fatal(err)
			}
			cfg := m.Config
			if err := cfg.ApplyJSON(raw); err != nil {
				t.Fatal(err)
			}
			var outs [2]*generate.Output
			for i, selects := range []bool{false, true} {
				dec := &countingDecoder{Decoder: m.Decoder, env: env, selects: selects}
				if outs[i], err = generate.Generate(context.Background(), dec, sources, cfg); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(outs[0].Sequences, outs[1].Sequences) || !reflect.DeepEqual(outs[0].TokenScores, outs[1].TokenScores) {
				t.Errorf("%s %s: host path %v %v, decoding head %v %v", model, kw, outs[0].Sequences, outs[0].TokenScores, outs[1].Sequences, outs[1].TokenScores)
			}
			for i := range outs[0].Scores {
				if d := math.Abs(float64(outs[0].Scores[i] - outs[1].Scores[i])); d > 1e-5 {
					t.Errorf("%s %s: sequence %d scores %v on the host path, %v through the head", model, kw, i, outs[0].Scores[i], outs[1].Scores[i])
				}
			}
		}
		m.Close()
	}
}

func sumRows(steps []stepTransfers) int {
	n := 0
	for _, s := range steps {
		n += s.rows
	}
	return n
}
