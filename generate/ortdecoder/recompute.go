package ortdecoder

import (
	"context"
	"errors"
	"fmt"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

// Recompute decodes with one full graph (input_ids, attention_mask,
// decoder_input_ids[, decoder_attention_mask] → logits), run over the whole
// decoder prefix every step: no cache, the encoder recomputed too.
type Recompute struct {
	sess    *onnxrt.Session
	pad     int64
	inputs  map[string]*onnxrt.Value
	decMask bool
}

// NewRecompute opens a full seq2seq graph. Position ids computed from the
// decoder's token ids count every earlier token, as with HF's default KV
// cache (see CachePositions).
func NewRecompute(env *onnxrt.Env, model string, pad int64, opts Options) (*Recompute, error) {
	s, err := openRecomputeSession(env, model, opts)
	if err != nil {
		return nil, err
	}
	d := &Recompute{sess: s, pad: pad, inputs: opts.Inputs}
	has := map[string]bool{}
	for _, in := range s.Inputs() {
		has[in.Name] = true
	}
	for _, need := range []string{"input_ids", "attention_mask", "decoder_input_ids"} {
		if !has[need] {
			s.Close()
			return nil, fmt.Errorf("%s has no %q input: recompute decoding needs a full seq2seq graph (input_ids, attention_mask, decoder_input_ids → logits)", model, need)
		}
	}
	d.decMask = has["decoder_attention_mask"]
	return d, nil
}

// Close releases the session.
func (d *Recompute) Close() error { return d.sess.Close() }

// Start keeps the padded sources; the encoder runs inside every step.
func (d *Recompute) Start(ctx context.Context, sources [][]int64) (generate.State, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids, mask, width := padSources(sources, d.pad)
	shape := []int64{int64(len(sources)), int64(width)}
	return &recomputeState{d: d, rows: len(sources), ids: newTensor(ids, shape), mask: newTensor(mask, shape)}, nil
}

type recomputeState struct {
	d         *Recompute
	rows      int
	ids, mask tensor[int64]
	logits    []float32
}

func (s *recomputeState) Step(ctx context.Context, prefixes [][]int64) (generate.Logits, error) {
	if err := ctx.Err(); err != nil {
		return generate.Logits{}, err
	}
	if len(prefixes) != s.rows {
		return generate.Logits{}, fmt.Errorf("decoder step over %d prefixes, state has %d rows", len(prefixes), s.rows)
	}
	length := len(prefixes[0])
	dec := make([]int64, 0, s.rows*length)
	for _, p := range prefixes {
		if len(p) != length {
			return generate.Logits{}, errors.New("decoder prefixes of unequal length")
		}
		dec = append(dec, p...)
	}
	shape := []int64{int64(s.rows), int64(length)}
	feed := map[string]any{"input_ids": s.ids, "attention_mask": s.mask, "decoder_input_ids": newTensor(dec, shape)}
	if s.d.decMask {
		ones := make([]int64, len(dec))
		for i := range ones {
			ones[i] = 1
		}
		feed["decoder_attention_mask"] = newTensor(ones, shape)
	}
	outs, err := run(s.d.sess, s.d.inputs, feed, []string{"logits"})
	if err != nil {
		return generate.Logits{}, err
	}
	return lastPosition(outs["logits"], s.rows, &s.logits)
}

func (s *recomputeState) Reorder(rows []int) error {
	for _, r := range rows {
		if r < 0 || r >= s.rows {
			return fmt.Errorf("reorder: row %d of %d", r, s.rows)
		}
	}
	s.ids, s.mask = s.ids.gather(rows), s.mask.gather(rows)
	s.rows = len(rows)
	return nil
}

func (s *recomputeState) Close() error { return nil }

// SetInputs replaces Options.Inputs for later runs (see KV.SetInputs).
func (d *Recompute) SetInputs(inputs map[string]*onnxrt.Value) { d.inputs = inputs }
