package artifacts

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// Files of Optimum's encoder-decoder export (optimum-cli export onnx).
const (
	OptimumEncoder         = "encoder_model.onnx"
	OptimumDecoder         = "decoder_model.onnx"
	OptimumDecoderWithPast = "decoder_with_past_model.onnx"
	// OptimumDecoderMerged holds both decoders behind an If on the input
	// use_cache_branch (Optimum's default post-processing of with-past
	// exports).
	OptimumDecoderMerged = "decoder_model_merged.onnx"
)

// Composition records how a forward graph was composed from an encoder and
// a decoder graph.
type Composition struct {
	Encoder string `json:"encoder"`
	Decoder string `json:"decoder"`
	// EncoderPrefix is what the encoder graph's names (exported from the
	// encoder module alone) were prefixed with to become the model's
	// state-dict names, read off the decoder graph's names ("model.decoder."
	// gives "model.encoder.").
	EncoderPrefix string `json:"encoder_prefix"`
	// Shared lists encoder tensors found to be a decoder tensor (same
	// values), as "encoder name = decoder name".
	Shared []string `json:"shared,omitempty"`
}

// ComposeForward builds the training forward graph (input_ids,
// attention_mask, decoder_input_ids[, decoder_attention_mask] -> logits)
// from an encoder graph (input_ids, attention_mask -> last_hidden_state)
// and a decoder graph (input_ids, encoder_hidden_states[,
// encoder_attention_mask] -> logits[, present.*]) as Optimum exports them.
// A merged decoder (decoder_model_merged.onnx) contributes the branch
// without past key values. Weights the two graphs share (the token
// embedding) become one initializer; names of the encoder graph get the
// encoder's state-dict prefix, so that the composed graph names tensors as
// a whole-model export does.
func ComposeForward(encoderPath, decoderPath string) (*onnxpb.ModelProto, *Composition, error) {
	enc, err := loadModel(encoderPath)
	if err != nil {
		return nil, nil, err
	}
	dec, err := loadModel(decoderPath)
	if err != nil {
		return nil, nil, err
	}
	return Compose(enc, dec, encoderPath, decoderPath)
}

// Compose is ComposeForward on loaded models (which it modifies); the
// paths only name the graphs in messages.
func Compose(enc, dec *onnxpb.ModelProto, encoderPath, decoderPath string) (*onnxpb.ModelProto, *Composition, error) {
	if _, err := InlineDecoderBranch(dec, false, decoderPath); err != nil {
		return nil, nil, err
	}
	eg, dg := enc.Graph, dec.Graph
	if eg == nil || dg == nil {
		return nil, nil, badModel("%s or %s has no graph", encoderPath, decoderPath)
	}
	if a, b := onnx.Opset(enc, ""), onnx.Opset(dec, ""); a != b {
		return nil, nil, badModel("%s has opset %d but %s has opset %d: export both with the same opset", encoderPath, a, decoderPath, b)
	}
	encIn := inputNames(eg)
	if !encIn["input_ids"] {
		return nil, nil, badModel("%s: no input_ids input (inputs: %s); it is not an encoder graph as Optimum exports it", encoderPath, strings.Join(sortedKeys(encIn), ", "))
	}
	for n := range encIn {
		if n != "input_ids" && n != "attention_mask" && !isInitializer(eg, n) {
			return nil, nil, badModel("%s: unexpected encoder input %q; the encoder takes input_ids and attention_mask", encoderPath, n)
		}
	}
	encOut := ""
	for _, o := range eg.Output {
		if o.GetName() == "last_hidden_state" {
			encOut = o.GetName()
		}
	}
	if encOut == "" {
		return nil, nil, badModel("%s: no output last_hidden_state (outputs: %s)", encoderPath, strings.Join(outputNames(eg), ", "))
	}
	decIn := inputNames(dg)
	for _, need := range []string{"input_ids", "encoder_hidden_states"} {
		if !decIn[need] {
			return nil, nil, badModel("%s: no %s input (inputs: %s); it is not a decoder graph as Optimum exports it", decoderPath, need, strings.Join(sortedKeys(decIn), ", "))
		}
	}
	for n := range decIn {
		switch n {
		case "input_ids", "encoder_hidden_states", "encoder_attention_mask", "decoder_attention_mask":
		default:
			if !isInitializer(dg, n) {
				return nil, nil, badModel("%s: unexpected decoder input %q; export the decoder without past key values (Optimum's decoder_model.onnx)", decoderPath, n)
			}
		}
	}
	if !slices.Contains(outputNames(dg), Logits) {
		return nil, nil, badModel("%s: no logits output (outputs: %s)", decoderPath, strings.Join(outputNames(dg), ", "))
	}

	comp := &Composition{Encoder: baseName(encoderPath), Decoder: baseName(decoderPath)}
	decPrefix := stackPrefix(dg, "decoder")
	if decPrefix != "" {
		comp.EncoderPrefix = strings.TrimSuffix(decPrefix, "decoder.") + "encoder."
	}
	// An encoder exported from the whole model already carries the prefix.
	if comp.EncoderPrefix != "" && stackPrefix(eg, "encoder") == comp.EncoderPrefix {
		comp.EncoderPrefix = ""
	}

	// Encoder names: state-dict names get the prefix, every other value
	// "encoder/", so that nothing collides with the decoder's names.
	renamed := map[string]string{}
	for _, t := range eg.Initializer {
		if n := t.GetName(); stateDictName(n) != "" {
			renamed[n] = comp.EncoderPrefix + stateDictName(n)
		} else {
			renamed[n] = "encoder/" + n
		}
	}
	for _, n := range eg.Node {
		for _, o := range n.Output {
			if o != "" {
				renamed[o] = "encoder/" + o
			}
		}
	}
	onnx.RenameValues(eg, renamed)
	pathPrefix := "/" + strings.ReplaceAll(strings.TrimSuffix(comp.EncoderPrefix, "."), ".", "/")
	for _, n := range eg.Node {
		switch name := n.GetName(); {
		case strings.HasPrefix(name, "/") && comp.EncoderPrefix != "":
			n.Name = proto.String(pathPrefix + name)
		case name != "" && !strings.HasPrefix(name, "/"):
			n.Name = proto.String("encoder/" + name)
		}
	}
	hidden := renamed[encOut]

	// Decoder inputs become the forward graph's.
	decRenamed := map[string]string{"input_ids": "decoder_input_ids", "encoder_hidden_states": hidden}
	if decIn["encoder_attention_mask"] {
		decRenamed["encoder_attention_mask"] = "attention_mask"
	}
	taken := map[string]bool{}
	for _, t := range eg.Initializer {
		taken[t.GetName()] = true
	}
	for _, n := range eg.Node {
		for _, o := range n.Output {
			taken[o] = true
		}
	}
	for _, t := range dg.Initializer {
		if taken[t.GetName()] {
			return nil, nil, badModel("%s and %s both define %q: they do not look like the two halves of one export", encoderPath, decoderPath, t.GetName())
		}
	}
	for _, n := range dg.Node {
		for _, o := range n.Output {
			if taken[o] || o == "decoder_input_ids" {
				return nil, nil, badModel("%s defines %q, which the composed graph needs for another value", decoderPath, o)
			}
		}
	}
	onnx.RenameValues(dg, decRenamed)

	g := &onnxpb.GraphProto{Name: proto.String("forward")}
	addInput := func(src *onnxpb.GraphProto, name string) {
		for _, in := range src.Input {
			if in.GetName() == name {
				for _, have := range g.Input {
					if have.GetName() == name {
						return
					}
				}
				g.Input = append(g.Input, in)
				return
			}
		}
	}
	addInput(eg, "input_ids")
	addInput(eg, "attention_mask")
	addInput(dg, "attention_mask")
	addInput(dg, "decoder_input_ids")
	addInput(dg, "decoder_attention_mask")
	g.Node = append(eg.Node, dg.Node...)
	g.Initializer = append(eg.Initializer, dg.Initializer...)
	g.ValueInfo = append(eg.ValueInfo, dg.ValueInfo...)
	for _, o := range dg.Output {
		if o.GetName() == Logits {
			g.Output = append(g.Output, o)
		}
	}
	shareAcrossGraphs(g, eg.Initializer, dg.Initializer, comp, decPrefix)
	onnx.RemoveDeadNodes(g)

	m := &onnxpb.ModelProto{
		IrVersion:    proto.Int64(max(enc.GetIrVersion(), dec.GetIrVersion())),
		ProducerName: proto.String("ortrain (composed from " + comp.Encoder + " and " + comp.Decoder + ")"),
		Graph:        g,
	}
	opsets := onnx.Opsets(enc)
	for d, v := range onnx.Opsets(dec) {
		opsets[d] = max(opsets[d], v)
	}
	for _, d := range slices.Sorted(maps.Keys(opsets)) {
		onnx.SetOpset(m, d, opsets[d])
	}
	return m, comp, nil
}

// shareAcrossGraphs makes encoder initializers that hold a decoder
// initializer's values read the decoder's one. Only tensors that carry
// identity are joined: not filled with one value, unique in each graph,
// and the decoder's one named outside both stacks (the model-level shared
// embedding that TorchScript names once, "model.shared.weight"): two
// tensors of the encoder and decoder stacks with equal values (Marian's
// sinusoidal position tables) stay two.
func shareAcrossGraphs(g *onnxpb.GraphProto, encInits, decInits []*onnxpb.TensorProto, comp *Composition, decPrefix string) {
	count := func(ts []*onnxpb.TensorProto) map[contentKey][]*onnxpb.TensorProto {
		m := map[contentKey][]*onnxpb.TensorProto{}
		for _, t := range ts {
			if !isCandidate(t) {
				continue
			}
			raw, err := onnx.RawBytes(t)
			if err != nil || constantFilled(raw) {
				continue
			}
			k := keyOf(t.GetDims(), raw)
			m[k] = append(m[k], t)
		}
		return m
	}
	encBy, decBy := count(encInits), count(decInits)
	encPrefix := comp.EncoderPrefix
	if encPrefix == "" && decPrefix != "" {
		encPrefix = strings.TrimSuffix(decPrefix, "decoder.") + "encoder."
	}
	inStack := func(name string) bool {
		return (decPrefix != "" && strings.HasPrefix(name, decPrefix)) || (encPrefix != "" && strings.HasPrefix(name, encPrefix))
	}
	renamed := map[string]string{}
	for k, es := range encBy {
		ds := decBy[k]
		if len(es) != 1 || len(ds) != 1 {
			continue
		}
		e, d := es[0].GetName(), ds[0].GetName()
		if stateDictName(d) == "" || inStack(stateDictName(d)) {
			continue
		}
		renamed[e] = d
		comp.Shared = append(comp.Shared, e+" = "+d)
	}
	if len(renamed) == 0 {
		return
	}
	slices.Sort(comp.Shared)
	kept := g.Initializer[:0]
	for _, t := range g.Initializer {
		if _, ok := renamed[t.GetName()]; !ok {
			kept = append(kept, t)
		}
	}
	g.Initializer = kept
	onnx.RenameValues(g, renamed)
}

// stackPrefix finds the state-dict prefix of the named stack ("decoder"):
// the names up to and including that component, e.g. "model.decoder." in
// model.decoder.layers.0.fc1.bias or in the node /model/decoder/layers.0/fc1/MatMul.
// The most frequent prefix wins; "" when no name has the component.
func stackPrefix(g *onnxpb.GraphProto, stack string) string {
	counts := map[string]int{}
	add := func(parts []string) {
		for i, p := range parts {
			if p == stack {
				counts[strings.Join(parts[:i+1], ".")+"."]++
				return
			}
		}
	}
	for _, t := range g.Initializer {
		if n := stateDictName(t.GetName()); n != "" {
			add(strings.Split(n, "."))
		}
	}
	for _, n := range g.Node {
		if name := n.GetName(); strings.HasPrefix(name, "/") {
			parts := strings.Split(strings.TrimPrefix(name, "/"), "/")
			add(parts[:len(parts)-1])
		}
	}
	best, bestN := "", 0
	for _, p := range slices.Sorted(maps.Keys(counts)) {
		if counts[p] > bestN {
			best, bestN = p, counts[p]
		}
	}
	return best
}

// InlineDecoderBranch replaces a merged decoder's If on use_cache_branch by
// the nodes of one branch: the one without past key values (withPast
// false: the first-step decoder, decoder_model.onnx) or the one with them
// (decoder_with_past_model.onnx; the encoder's past passes through, so its
// present.*.encoder.* outputs are dropped). It reports whether the graph
// was a merged decoder; other graphs are left as they are.
func InlineDecoderBranch(m *onnxpb.ModelProto, withPast bool, path string) (bool, error) {
	g := m.Graph
	if g == nil {
		return false, nil
	}
	idx := -1
	for i, n := range g.Node {
		if n.GetOpType() == "If" && len(n.Input) == 1 && n.Input[0] == "use_cache_branch" {
			idx = i
		}
	}
	if idx < 0 {
		return false, nil
	}
	ifNode := g.Node[idx]
	var branch *onnxpb.GraphProto
	for _, a := range ifNode.Attribute {
		refsPast := false
		if a.G == nil {
			continue
		}
		for _, r := range onnx.OuterRefs(a.G) {
			refsPast = refsPast || strings.HasPrefix(r, "past_key_values.")
		}
		if refsPast == withPast {
			branch = a.G
		}
	}
	if branch == nil {
		return true, badModel("%s: the If on use_cache_branch has no branch %s past key values", path, map[bool]string{true: "with", false: "without"}[withPast])
	}
	if len(branch.Output) != len(ifNode.Output) {
		return true, badModel("%s: a branch of the If on use_cache_branch has %d outputs, the If %d", path, len(branch.Output), len(ifNode.Output))
	}
	taken := map[string]bool{}
	for _, t := range g.Initializer {
		taken[t.GetName()] = true
	}
	for _, t := range branch.Initializer {
		if taken[t.GetName()] {
			return true, badModel("%s: branch initializer %q clashes with an initializer of the graph", path, t.GetName())
		}
	}
	nodes := append([]*onnxpb.NodeProto{}, g.Node[:idx]...)
	nodes = append(nodes, branch.Node...)
	for i, o := range branch.Output {
		if from, to := o.GetName(), ifNode.Output[i]; from != to && to != "" {
			nodes = append(nodes, &onnxpb.NodeProto{Name: proto.String("inline/" + to), OpType: proto.String("Identity"), Input: []string{from}, Output: []string{to}})
		}
	}
	g.Node = append(nodes, g.Node[idx+1:]...)
	g.Initializer = append(g.Initializer, branch.Initializer...)
	g.ValueInfo = append(g.ValueInfo, branch.ValueInfo...)
	// Outputs and inputs of the chosen decoder only.
	outs := g.Output[:0]
	for _, o := range g.Output {
		if withPast && strings.HasPrefix(o.GetName(), "present.") && strings.Contains(o.GetName(), ".encoder.") {
			continue
		}
		outs = append(outs, o)
	}
	g.Output = outs
	onnx.RemoveDeadNodes(g)
	used := map[string]bool{}
	for _, n := range g.Node {
		for _, s := range onnx.NodeInputs(n) {
			used[s] = true
		}
	}
	for _, o := range g.Output {
		used[o.GetName()] = true
	}
	ins := g.Input[:0]
	for _, in := range g.Input {
		if in.GetName() == "use_cache_branch" || (!used[in.GetName()] && in.GetName() != "input_ids") {
			continue
		}
		ins = append(ins, in)
	}
	g.Input = ins
	return true, nil
}

// stateDictName returns name as a PyTorch state-dict name (dotted
// identifiers, as TorchScript names the parameters it keeps), without the
// "_merged_N" suffix Optimum gives initializers of a merged decoder; ""
// for exporter-made names (onnx::MatMul_994, /model/Constant_output_0, val_3).
func stateDictName(name string) string {
	if i := strings.LastIndex(name, "_merged_"); i > 0 && isDigits(name[i+len("_merged_"):]) {
		name = name[:i]
	}
	if name == "" || !strings.Contains(name, ".") && !strings.Contains(name, "_") {
		return "" // single words (val, weight) are not module paths
	}
	for _, part := range strings.Split(name, ".") {
		if part == "" {
			return ""
		}
		for _, r := range part {
			if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return ""
			}
		}
	}
	if strings.HasPrefix(name, "val_") && isDigits(strings.TrimPrefix(name, "val_")) {
		return "" // the dynamo exporter's anonymous values
	}
	return name
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// constantFilled reports whether every float32 element has the same bits
// (all zeros, all ones): such tensors carry no identity, since untrained
// norms and biases of one shape all look alike.
func constantFilled(raw []byte) bool {
	for i := 4; i+4 <= len(raw); i += 4 {
		if raw[i] != raw[0] || raw[i+1] != raw[1] || raw[i+2] != raw[2] || raw[i+3] != raw[3] {
			return false
		}
	}
	return true
}

func inputNames(g *onnxpb.GraphProto) map[string]bool {
	m := map[string]bool{}
	for _, in := range g.Input {
		m[in.GetName()] = true
	}
	return m
}

func outputNames(g *onnxpb.GraphProto) []string {
	var out []string
	for _, o := range g.Output {
		out = append(out, o.GetName())
	}
	return out
}

func sortedKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// FolderConfig says how an exported model folder becomes artifacts: the
// forward graph model.onnx, or else the forward graph composed from
// Optimum's encoder_model.onnx and decoder_model.onnx (or the no-past
// branch of decoder_model_merged.onnx); the KV-cache generation graphs
// where the folder has a decoder with past (decoder_with_past_model.onnx
// or the merged decoder). Weights (model.safetensors) are found by Build.
func FolderConfig(dir string) (Config, error) {
	has := func(f string) string {
		if p := filepath.Join(dir, f); fileExists(p) {
			return p
		}
		return ""
	}
	var cfg Config
	enc, dec, past, merged := has(OptimumEncoder), has(OptimumDecoder), has(OptimumDecoderWithPast), has(OptimumDecoderMerged)
	if enc != "" && (past != "" || merged != "") && (dec != "" || merged != "") {
		cfg.Encoder, cfg.Decoder, cfg.DecoderWithPast, cfg.DecoderMerged = enc, dec, past, merged
		if dec != "" && past != "" {
			cfg.DecoderMerged = "" // the separate graphs serve both purposes
		}
	}
	if m := has("model.onnx"); m != "" {
		cfg.Model = m
		return cfg, nil
	}
	switch {
	case enc != "" && (dec != "" || merged != ""):
		cfg.Encoder = enc
		if dec != "" {
			cfg.Decoder = dec
		} else {
			cfg.DecoderMerged = merged
		}
		return cfg, nil
	case enc != "":
		return cfg, fault.Inputf("%s has %s but no decoder graph (%s or %s) and no model.onnx: copy the whole folder that optimum-cli export onnx wrote", dir, OptimumEncoder, OptimumDecoder, OptimumDecoderMerged)
	case dec != "" || merged != "":
		return cfg, fault.Inputf("%s has a decoder graph but no %s and no model.onnx: copy the whole folder that optimum-cli export onnx wrote", dir, OptimumEncoder)
	}
	if _, err := os.Stat(dir); err != nil {
		return cfg, fault.Inputf("model folder: %w", err)
	}
	return cfg, fault.Inputf("%s holds no ONNX export: want model.onnx (a forward graph: input_ids, attention_mask, decoder_input_ids -> logits) or Optimum's %s with %s (optimum-cli export onnx --task text2text-generation-with-past)", dir, OptimumEncoder, OptimumDecoder)
}
