package ortdecoder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

var (
	_ generate.Decoder = (*KV)(nil)
	_ generate.Decoder = (*Recompute)(nil)
	_ generate.Decoder = (*Artifacts)(nil)
	_ generate.Decoder = (*Model)(nil)
)

// Options configure the sessions of a decoder.
type Options struct {
	// Device is "cpu", "cuda" or "cuda:N".
	Device         string
	IntraOpThreads int
	// Inputs are fed to every run of every graph that declares them by name
	// (the parameters of artifact generation graphs). The caller keeps
	// ownership; values may live on the device.
	Inputs map[string]*onnxrt.Value
	// HostReorder reorders the KV cache in Go memory instead of inside ONNX
	// Runtime (see withInGraphReorder): every run then brings the encoder
	// output and the cache to host memory, and the next run copies them
	// back to the session's device.
	HostReorder bool
	// Variant selects an artifact folder's lower-precision generation
	// graphs (artifacts.Manifest.Variants; OpenArtifacts only).
	Variant string
	// DisabledOptimizers and TF32 pass to the sessions (onnxrt.SessionOptions).
	DisabledOptimizers []string
	TF32               bool
	// HostSelect makes greedy and beam search pick tokens in Go from the
	// full logits (the reference path) instead of with the decoding head,
	// a small graph on the decoder's device that applies the log-softmax
	// and the logits processors and returns each row's best tokens: on a
	// GPU the head copies rows × k values and ids to the host instead of
	// the logits, and on the CPU it makes beam search about 1.5× faster
	// (ONNX Runtime's vectorised log-softmax and TopK).
	HostSelect bool
	// DType, float16 or bfloat16, runs the graphs with the model cast to
	// that type (predict --dtype, as model.to(dtype) before generate());
	// Undefined runs them as they are.
	DType onnx.DType
}

func (o Options) session() onnxrt.SessionOptions {
	// NoSpinning: a step runs several sessions in turn (onnxrt.SessionOptions)
	return onnxrt.SessionOptions{Device: o.Device, IntraOpThreads: o.IntraOpThreads, DisabledOptimizers: o.DisabledOptimizers, TF32: o.TF32, NoSpinning: true}
}

// Files of Optimum's encoder-decoder layout.
const (
	EncoderFile         = "encoder_model.onnx"
	DecoderFile         = "decoder_model.onnx"
	DecoderWithPastFile = "decoder_with_past_model.onnx"
	FullModelFile       = "model.onnx"
)

// KV decodes with a key/value cache over Optimum's three graphs.
type KV struct {
	enc, dec, past *onnxrt.Session
	pad            int64
	inputs         map[string]*onnxrt.Value
	// present output name → past input name, for the first step and later ones
	firstMap, pastMap map[string]string
	pastNames         []string // past inputs of decoder_with_past, sorted
	// inGraphReorder: decoder_with_past gathers its decoder past by ortrain_beam_idx.
	inGraphReorder bool
	// inPlace: decoder_with_past attends over its decoder past in place
	// (attendInPlace): the decoder cache tensors are allocated for more
	// positions than they hold (kvState.reserve), each step writes its
	// position into them, and only the positions held are permuted.
	inPlace bool
	// sharedSources: decoder_with_past reads the encoder past with a row
	// per group of decoder rows (shareSources), kept by kvState.encSrc.
	sharedSources bool
	// permuteRows: the decoder cache is in host memory (CPU sessions) and
	// beam reorders permute its rows in place (onnxrt.Value.PermuteRowsPrefix),
	// copying only the rows that move — about a third of them a step in
	// beam search — and of those only the positions after the tokens the
	// two rows share, where a gather, in the graph or not, copies the
	// whole cache.
	permuteRows bool
	// hostOutputs brings every output to host memory and reorders rows in
	// Go (Options.HostReorder). Otherwise the values that are only fed back
	// into ONNX Runtime (last_hidden_state, present.*) stay in the sessions'
	// device memory, only the logits come to the host, and rows are gathered
	// by the gatherers' graphs, on the device.
	hostOutputs bool
	gatherers   map[onnxrt.DType]*onnxrt.Session
	// selects: the searches pick tokens with the decoding head (unless
	// Options.HostSelect).
	selects bool
	head    decodingHead
	// traceBind, if set (tests), hears where each output of a run is bound.
	traceBind func(graph, output string, onDevice bool)
}

// NewKV opens encoder, decoder and decoder-with-past graph files. pad fills
// the encoder inputs beyond each source's length (masked out).
func NewKV(env *onnxrt.Env, encoder, decoder, decoderWithPast string, pad int64, opts Options) (*KV, error) {
	for _, p := range []string{encoder, decoder, decoderWithPast} {
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, os.ErrNotExist) && p == decoderWithPast {
				return nil, fmt.Errorf("KV-cache decoding needs %s, which does not exist: export the model with past key values (Optimum: --task text2text-generation-with-past) or decode without the cache", p)
			}
			return nil, fmt.Errorf("generation graph: %w", err)
		}
	}
	d := &KV{pad: pad, inputs: opts.Inputs, hostOutputs: opts.HostReorder}
	d.selects = !opts.HostSelect
	var err error
	closeAll := func() { d.Close() }
	if d.enc, err = sessionOf(env, encoder, opts); err != nil {
		return nil, err
	}
	if d.dec, err = sessionOf(env, decoder, opts); err != nil {
		closeAll()
		return nil, err
	}
	dev, err := onnxrt.ParseDevice(opts.Device)
	if err != nil {
		closeAll()
		return nil, err
	}
	d.head = newDecodingHead(env, opts.session(), dev.Kind == onnxrt.CPU.Kind)
	if opts.HostReorder {
		d.past, err = sessionOf(env, decoderWithPast, opts)
	} else {
		d.permuteRows = dev.Kind == onnxrt.CPU.Kind
		var how pastGraph
		d.past, how, err = openDecoderWithPast(env, decoderWithPast, opts, !d.permuteRows)
		d.inGraphReorder, d.inPlace, d.sharedSources = how.inGraphReorder, how.inPlace, how.sharedSources
	}
	if err != nil {
		closeAll()
		return nil, err
	}
	if err := d.mapCache(decoder, decoderWithPast); err != nil {
		closeAll()
		return nil, err
	}
	if !d.hostOutputs {
		if d.gatherers, err = openGatherers(env, d.fedBackTypes(), opts.session()); err != nil {
			closeAll()
			return nil, err
		}
	}
	return d, nil
}

// OpenKV opens Optimum's layout in dir.
func OpenKV(env *onnxrt.Env, dir string, pad int64, opts Options) (*KV, error) {
	return NewKV(env, filepath.Join(dir, EncoderFile), filepath.Join(dir, DecoderFile), filepath.Join(dir, DecoderWithPastFile), pad, opts)
}

// mapCache pairs present.* outputs with past_key_values.* inputs.
func (d *KV) mapCache(decoder, decoderWithPast string) error {
	pastIn := map[string]bool{}
	for _, in := range d.past.Inputs() {
		if strings.HasPrefix(in.Name, "past_key_values.") {
			pastIn[in.Name] = true
			d.pastNames = append(d.pastNames, in.Name)
		}
	}
	sort.Strings(d.pastNames)
	if len(pastIn) == 0 {
		return fmt.Errorf("%s has no past_key_values.* inputs: it is not a decoder-with-past graph", decoderWithPast)
	}
	toPast := func(present string) string { return "past_key_values." + strings.TrimPrefix(present, "present.") }
	d.firstMap, d.pastMap = map[string]string{}, map[string]string{}
	for _, out := range d.dec.Outputs() {
		if strings.HasPrefix(out.Name, "present.") && pastIn[toPast(out.Name)] {
			d.firstMap[out.Name] = toPast(out.Name)
		}
	}
	for _, out := range d.past.Outputs() {
		if strings.HasPrefix(out.Name, "present.") && pastIn[toPast(out.Name)] {
			d.pastMap[out.Name] = toPast(out.Name)
		}
	}
	if len(d.firstMap) != len(pastIn) {
		return fmt.Errorf("%s provides %d of the %d past key/value tensors %s needs (present.* outputs): export the decoder with use_cache=True, or decode without the cache", decoder, len(d.firstMap), len(pastIn), decoderWithPast)
	}
	return nil
}

// fedBackTypes lists the element types of the outputs that are fed back
// into later runs (and gathered when rows change).
func (d *KV) fedBackTypes() []onnxrt.DType {
	var out []onnxrt.DType
	for _, o := range d.enc.Outputs() {
		if o.Name == "last_hidden_state" {
			out = append(out, o.DType)
		}
	}
	for _, s := range []*onnxrt.Session{d.dec, d.past} {
		for _, o := range s.Outputs() {
			// logits too: beam search's first step gathers them (advanceExpanding)
			if strings.HasPrefix(o.Name, "present.") || o.Name == "logits" {
				out = append(out, o.DType)
			}
		}
	}
	return out
}

// Close releases the sessions.
func (d *KV) Close() error {
	for _, s := range []*onnxrt.Session{d.enc, d.dec, d.past} {
		if s != nil {
			s.Close()
		}
	}
	for _, s := range d.gatherers {
		s.Close()
	}
	d.gatherers = nil
	d.head.close()
	return nil
}

// run runs a session of the decoder: the host outputs come to Go, the
// fed-back ones stay on the device unless hostOutputs.
func (d *KV) run(s *onnxrt.Session, graph string, feed map[string]any, host, fedBack []string, into map[string]*onnxrt.Value) (map[string]*onnxrt.Value, error) {
	if d.hostOutputs {
		host, fedBack = append(append([]string(nil), host...), fedBack...), nil
	}
	if d.traceBind != nil {
		for _, name := range host {
			d.traceBind(graph, name, false)
		}
		for _, name := range fedBack {
			d.traceBind(graph, name, true)
		}
	}
	return runValues(s, d.inputs, feed, host, fedBack, into)
}

// gather picks rows of a kept value: in Go memory on the host path, else
// inside ONNX Runtime on the session's device.
func (d *KV) gather(c *cached, rows []int) error {
	if d.hostOutputs {
		return c.gather(rows)
	}
	v, err := c.value()
	if err != nil {
		return err
	}
	g, err := gatherValue(d.gatherers, v, rows)
	if err != nil {
		return err
	}
	c.close()
	c.host, c.val = nil, g
	return nil
}

// Start runs the encoder over the sources.
func (d *KV) Start(ctx context.Context, sources [][]int64) (generate.State, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids, mask, width := padSources(sources, d.pad)
	shape := []int64{int64(len(sources)), int64(width)}
	outs, err := d.run(d.enc, "encoder", map[string]any{"input_ids": newTensor(ids, shape), "attention_mask": newTensor(mask, shape)}, nil, []string{"last_hidden_state"}, nil)
	if err != nil {
		return nil, err
	}
	s := &kvState{d: d, rows: len(sources), mask: newTensor(mask, shape), hidden: &cached{val: outs["last_hidden_state"]},
		encPast: map[string]*cached{}, decPast: map[string]*cached{}, srcOf: identity(len(sources))}
	return s, nil
}

// kvState keeps, per row, the encoder outputs and the key/value cache. Rows
// of the same source share identical encoder-side tensors, so those are
// only gathered when the rows' sources change (beam expansion, dropped
// items), not when beams are reordered within a source.
type kvState struct {
	d       *KV
	rows    int
	srcOf   []int // source of each row
	mask    tensor[int64]
	hidden  *cached
	encPast map[string]*cached // past_key_values.*.encoder.* (fixed per source)
	// encSrc is the source of each row of encPast when the decoder shares
	// them among rows (KV.sharedSources): they are then left as the first
	// step made them, and groupSources picks the rows a step needs.
	encSrc  []int
	decPast map[string]*cached // the rest of the cache, reordered every step
	seen    int                // decoder positions in the cache
	// pending is the reorder the next decoder-with-past run applies to the
	// decoder cache in-graph (nil: none); decPast keeps the previous rows.
	pending []int
	// expand, before the first decoder step, maps each row to a row of
	// hidden and mask not yet gathered (nil: none). Beam search expands
	// every source to num_beams identical rows before that step; running it
	// on the sources and then gathering its outputs computes the
	// cross-attention keys and values once per source instead of once per
	// beam.
	expand []int
	logits []float32
	// scratch holds the rows a permutation of the cache copies aside
	scratch []byte
	// tokens are the rows' decoder inputs so far (the prefixes of the last
	// step): a row that takes over another's place in the cache keeps the
	// positions of the tokens they share (permuting in place).
	tokens [][]int64
}

func isEncoderPast(name string) bool { return strings.Contains(name, ".encoder.") }

func (s *kvState) Step(ctx context.Context, prefixes [][]int64) (generate.Logits, error) {
	v, err := s.advance(ctx, prefixes, false)
	if err != nil {
		return generate.Logits{}, err
	}
	s.remember(prefixes)
	logits, err := readValue(v)
	v.Close()
	if err != nil {
		return generate.Logits{}, err
	}
	return lastPosition(logits, s.rows, &s.logits)
}

// Selects: the searches pick tokens with the decoding head unless
// Options.HostSelect, or on the host path (Options.HostReorder).
func (s *kvState) Selects() (bool, int) {
	return s.d.selects && !s.d.hostOutputs, vocabOf(s.d.dec)
}

// SelectStep advances like Step, keeping the logits in the session's
// device memory, and returns each row's k best tokens after the edits
// (the decoding head): rows × k values and ids come to the host.
func (s *kvState) SelectStep(ctx context.Context, prefixes [][]int64, edits generate.Edits, k int) (generate.TopK, error) {
	v, err := s.advance(ctx, prefixes, true)
	if err != nil {
		return generate.TopK{}, err
	}
	s.remember(prefixes)
	defer v.Close()
	return s.d.head.run(v, edits, k)
}

// advance runs the decoder (or the decoder with past) over the prefixes'
// new tokens, keeps the cache, and returns the logits: in host memory, or
// in the session's device memory when onDevice.
func (s *kvState) advance(ctx context.Context, prefixes [][]int64, onDevice bool) (*onnxrt.Value, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(prefixes) != s.rows {
		return nil, fmt.Errorf("decoder step over %d prefixes, state has %d rows", len(prefixes), s.rows)
	}
	length := len(prefixes[0])
	first := s.seen == 0
	if first && s.expand != nil {
		return s.advanceExpanding(ctx, prefixes, onDevice)
	}
	if !first && length <= s.seen {
		return nil, fmt.Errorf("decoder prefix of %d tokens, cache already holds %d", length, s.seen)
	}
	from := s.seen
	ids := make([]int64, 0, s.rows*(length-from))
	for _, p := range prefixes {
		if len(p) != length {
			return nil, errors.New("decoder prefixes of unequal length")
		}
		ids = append(ids, p[from:]...)
	}
	feed := map[string]any{
		"input_ids":              newTensor(ids, []int64{int64(s.rows), int64(length - from)}),
		"encoder_attention_mask": s.mask,
		"encoder_hidden_states":  s.hidden,
	}
	sess, mapping, graph := s.d.dec, s.d.firstMap, "decoder"
	var into map[string]*onnxrt.Value
	if !first {
		sess, mapping, graph = s.d.past, s.d.pastMap, "decoder_with_past"
		if s.d.sharedSources {
			if err := s.groupSources(); err != nil {
				return nil, err
			}
		}
		for name, c := range s.encPast {
			feed[name] = c
		}
		for name, c := range s.decPast {
			feed[name] = c
		}
		if s.d.inGraphReorder {
			idx := s.pending
			if idx == nil {
				idx = identity(s.rows)
			}
			beam := make([]int64, len(idx))
			for i, r := range idx {
				beam[i] = int64(r)
			}
			feed[beamIndexInput] = newTensor(beam, []int64{int64(len(beam))})
		}
		if s.d.inPlace {
			if length-from != 1 {
				return nil, fmt.Errorf("decoder step over %d new positions: the decoder cache is extended in place, one position a step", length-from)
			}
			var err error
			if into, err = s.reserve(s.seen + 1); err != nil {
				return nil, err
			}
			held, err := onnxrt.NewTensor([]int64{1}, []int32{int32(s.seen)})
			if err != nil {
				return nil, err
			}
			defer held.Close()
			feed[pastLengthInput] = held
		}
	}
	presents := make([]string, 0, len(mapping))
	for present := range mapping {
		if into[present] == nil {
			presents = append(presents, present)
		}
	}
	sort.Strings(presents)
	host, fedBack := []string{"logits"}, presents
	if onDevice {
		host, fedBack = nil, append([]string{"logits"}, presents...)
	}
	outs, err := s.d.run(sess, graph, feed, host, fedBack, into)
	if err != nil {
		return nil, err
	}
	for present, pastName := range mapping {
		if into[present] != nil {
			// written into the cache it read
			outs[present].Close()
			continue
		}
		dst := s.decPast
		if isEncoderPast(pastName) {
			dst = s.encPast
		}
		if old := dst[pastName]; old != nil {
			old.close()
		}
		dst[pastName] = &cached{val: outs[present]}
	}
	if first {
		// the first step's encoder past: a row per row of this step
		s.encSrc = slices.Clone(s.srcOf)
		if s.encSrc == nil {
			s.encSrc = identity(s.rows)
		}
	}
	s.seen = length
	if !first {
		s.pending = nil
	}
	return outs["logits"], nil
}

func (s *kvState) Reorder(rows []int) error {
	srcOf := make([]int, len(rows))
	sameSources := len(rows) == s.rows
	identity := sameSources
	for i, r := range rows {
		if r < 0 || r >= s.rows {
			return fmt.Errorf("reorder: row %d of %d", r, s.rows)
		}
		srcOf[i] = s.srcOf[r]
		sameSources = sameSources && srcOf[i] == s.srcOf[i]
		identity = identity && r == i
	}
	if identity {
		return nil
	}
	switch {
	case s.d.permuteRows && len(s.decPast) > 0 && len(rows) == s.rows:
		plan, err := onnxrt.PlanRowPermutation(rows)
		if err != nil {
			return err
		}
		plan.SkipLeading(s.sharedTokens)
		for _, c := range s.decPast {
			v, err := c.value()
			switch {
			case err != nil:
			default:
				err = v.PermuteRowsPrefix(plan, cachePositionAxis, int64(s.seen), &s.scratch)
			}
			if err != nil {
				return err
			}
		}
	case s.d.inGraphReorder && len(s.decPast) > 0:
		// new row i continues physical row pending[rows[i]]
		s.pending = compose(s.pending, rows)
	default:
		for _, c := range s.decPast {
			if err := s.d.gather(c, rows); err != nil {
				return err
			}
		}
	}
	if !sameSources && s.seen == 0 && !s.d.hostOutputs {
		s.expand = compose(s.expand, rows)
	} else if !sameSources {
		if err := s.materialize(); err != nil {
			return err
		}
		s.mask = s.mask.gather(rows)
		if err := s.d.gather(s.hidden, rows); err != nil {
			return err
		}
		if !s.d.sharedSources {
			for _, c := range s.encPast {
				if err := s.d.gather(c, rows); err != nil {
					return err
				}
			}
			s.encSrc = srcOf
		}
	}
	if s.tokens != nil {
		tokens := make([][]int64, len(rows))
		for i, r := range rows {
			tokens[i] = s.tokens[r]
		}
		s.tokens = tokens
	}
	s.srcOf, s.rows = srcOf, len(rows)
	return nil
}

// remember keeps a copy of the rows' decoder inputs after a step.
func (s *kvState) remember(prefixes [][]int64) {
	s.tokens = make([][]int64, len(prefixes))
	for i, p := range prefixes {
		s.tokens[i] = slices.Clone(p)
	}
}

// sharedTokens is how many leading cache positions rows dst and src hold
// equal: those of the decoder inputs they share, if they continue one
// source (the keys and values of a position depend on the source and the
// inputs up to it, computed the same way in every row).
func (s *kvState) sharedTokens(dst, src int) int {
	if s.tokens == nil || s.srcOf == nil || s.srcOf[dst] != s.srcOf[src] {
		return 0
	}
	a, b := s.tokens[dst], s.tokens[src]
	n := 0
	for n < len(a) && n < len(b) && n < s.seen && a[n] == b[n] {
		n++
	}
	return n
}

// groupSources gives the encoder past the rows a decoder-with-past run of
// the current rows reads (KV.sharedSources): one per group of consecutive
// rows of one source, the groups all of one size — as many rows as beams
// or returned sequences per source — or, where the rows do not fall in
// such groups, one per row. It gathers only when that differs from what
// the encoder past holds, which in beam search is when a source is done.
func (s *kvState) groupSources() error {
	want := groupsOf(s.srcOf)
	if slices.Equal(want, s.encSrc) {
		return nil
	}
	at := make(map[int]int, len(s.encSrc))
	for i := len(s.encSrc) - 1; i >= 0; i-- {
		at[s.encSrc[i]] = i
	}
	rows := make([]int, len(want))
	for i, src := range want {
		r, ok := at[src]
		if !ok {
			return fmt.Errorf("decoder rows continue source %d, whose encoder keys and values are no longer kept", src)
		}
		rows[i] = r
	}
	for _, c := range s.encPast {
		if err := s.d.gather(c, rows); err != nil {
			return err
		}
	}
	s.encSrc = want
	return nil
}

// groupsOf splits rows of the given sources into groups of consecutive
// rows, all of one size, each of one source, and returns the groups'
// sources; rows that do not split so are groups of one.
func groupsOf(srcOf []int) []int {
	size := 1
	for size < len(srcOf) && srcOf[size] == srcOf[0] {
		size++
	}
	for i := range srcOf {
		if len(srcOf)%size != 0 || srcOf[i] != srcOf[i-i%size] {
			size = 1
			break
		}
	}
	groups := make([]int, 0, len(srcOf)/size)
	for i := 0; i < len(srcOf); i += size {
		groups = append(groups, srcOf[i])
	}
	return groups
}

func identity(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// cachePositionAxis is the axis of positions of the decoder cache tensors,
// [rows, heads, positions, head size].
const cachePositionAxis = 2

// reserve makes every decoder cache tensor hold room for need positions
// (KV.inPlace), moving the positions held into a larger one when it has
// not, and returns them by the names of the presents written into them.
// A search of n steps moves its cache O(log n + n/maxCacheGrowth) times.
func (s *kvState) reserve(need int) (map[string]*onnxrt.Value, error) {
	into := make(map[string]*onnxrt.Value, len(s.decPast))
	for present, pastName := range s.d.pastMap {
		c := s.decPast[pastName]
		if c == nil {
			continue
		}
		v, err := c.value()
		if err != nil {
			return nil, err
		}
		shape := v.Shape()
		if len(shape) != 4 {
			return nil, fmt.Errorf("%s: cache tensor of shape %v, want [rows, heads, positions, head size]", pastName, shape)
		}
		if room := int(shape[cachePositionAxis]); room < need {
			shape[cachePositionAxis] = int64(max(need, min(2*room, room+maxCacheGrowth), minCacheRoom))
			grown, err := onnxrt.NewZeros(v.DType(), shape)
			if err != nil {
				return nil, err
			}
			if err := grown.CopyPrefix(v, cachePositionAxis); err != nil {
				grown.Close()
				return nil, err
			}
			c.close()
			c.host, c.val = nil, grown
		}
		// the run writes into the value: a host copy would be stale
		c.host = nil
		into[present] = c.val
	}
	return into, nil
}

// A cache is allocated for at least minCacheRoom positions and grows
// twofold, by maxCacheGrowth positions at most: the room unused is less
// than the positions held and than maxCacheGrowth.
const (
	minCacheRoom   = 16
	maxCacheGrowth = 256
)

// compose applies the row selection rows after a pending one (nil: none):
// row i becomes row pending[rows[i]].
func compose(pending, rows []int) []int {
	next := slices.Clone(rows)
	if pending != nil {
		for i, r := range rows {
			next[i] = pending[r]
		}
	}
	return next
}

// materialize gathers hidden and mask to the rows of a pending expansion.
func (s *kvState) materialize() error {
	if s.expand == nil {
		return nil
	}
	s.mask = s.mask.gather(s.expand)
	if err := s.d.gather(s.hidden, s.expand); err != nil {
		return err
	}
	s.expand = nil
	return nil
}

// advanceExpanding runs the first decoder step on the rows before a pending
// expansion when the rows sharing one have the same prefix (they do in beam
// search), then gathers the logits and the cache to the expanded rows.
func (s *kvState) advanceExpanding(ctx context.Context, prefixes [][]int64, onDevice bool) (*onnxrt.Value, error) {
	// one prefix per row before the expansion, if every such row is used
	// and its expanded rows agree
	of := make([][]int64, s.mask.shape[0])
	same := onDevice
	for i, r := range s.expand {
		if !same {
			break
		}
		if of[r] == nil {
			of[r] = prefixes[i]
		}
		same = slices.Equal(of[r], prefixes[i])
	}
	same = same && !slices.ContainsFunc(of, func(p []int64) bool { return p == nil })
	if !same {
		if err := s.materialize(); err != nil {
			return nil, err
		}
		return s.advance(ctx, prefixes, onDevice)
	}
	expand, rows, srcOf := s.expand, s.rows, s.srcOf
	s.expand, s.rows, s.srcOf = nil, len(of), nil
	logits, err := s.advance(ctx, of, onDevice)
	s.rows, s.srcOf = rows, srcOf
	if err != nil {
		return nil, err
	}
	expanded, err := gatherValue(s.d.gatherers, logits, expand)
	logits.Close()
	if err != nil {
		return nil, err
	}
	s.mask = s.mask.gather(expand)
	err = s.d.gather(s.hidden, expand)
	gathered := []map[string]*cached{s.encPast, s.decPast}
	if s.d.sharedSources {
		// the encoder past stays a row per source (groupSources)
		gathered = gathered[1:]
	} else {
		s.encSrc = srcOf
	}
	for _, m := range gathered {
		for _, c := range m {
			if err == nil {
				err = s.d.gather(c, expand)
			}
		}
	}
	if err != nil {
		expanded.Close()
		return nil, err
	}
	return expanded, nil
}

// Close releases the values the state holds.
func (s *kvState) Close() error {
	s.hidden.close()
	for _, m := range []map[string]*cached{s.encPast, s.decPast} {
		for _, c := range m {
			c.close()
		}
	}
	return nil
}

// SetInputs replaces Options.Inputs for later runs (the caller keeps
// ownership): a trainer that swaps its parameter buffers points the decoder
// at the current ones without reopening the sessions.
func (d *KV) SetInputs(inputs map[string]*onnxrt.Value) { d.inputs = inputs }
