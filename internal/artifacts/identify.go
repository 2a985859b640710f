package artifacts

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/safetensors"
)

// Alias is another initializer of the source graph that holds the same
// tensor as a parameter (a tied weight, or a copy the exporter folded, such
// as the transposed embedding that a tied lm_head multiplies by). The
// graphs read the parameter instead.
type Alias struct {
	ONNXName string `json:"onnx_name"`
	// Transposed: the alias holds the transpose of the parameter's graph
	// layout (the graphs read Transpose(parameter)).
	Transposed bool `json:"transposed,omitempty"`
}

// Unmatched is a float initializer of the forward graph that is no
// parameter of the model as far as ortrain can establish: it stays a
// constant of the graphs (never trained, not written to checkpoints).
type Unmatched struct {
	ONNXName string  `json:"onnx_name"`
	Shape    []int64 `json:"shape"`
	Bytes    int64   `json:"bytes"`
	UsedBy   string  `json:"used_by,omitempty"` // the first node reading it
	Reason   string  `json:"reason"`
}

// How a parameter was identified (Parameter.MatchedBy).
const (
	ByName       = "name"        // the initializer's name is the state-dict name
	ByModulePath = "module path" // the reading node's module path names it
	ByContent    = "content"     // equal values (possibly transposed) in the weights file
	ByHand       = "--param-name"
)

// use is one place where a graph reads an initializer.
type use struct {
	node, op string
	slot     int
	transB   bool
}

func initializerUses(g *onnxpb.GraphProto) map[string][]use {
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	out := map[string][]use{}
	for _, n := range g.GetNode() {
		for i, in := range n.Input {
			if inits[in] {
				out[in] = append(out[in], use{node: n.GetName(), op: n.GetOpType(), slot: i, transB: onnx.AttrIntOr(n, "transB", 0) == 1})
			}
		}
		for _, s := range onnx.NodeInputs(n)[len(nonEmpty(n.Input)):] {
			if inits[s] { // read inside a subgraph: no module path to read
				out[s] = append(out[s], use{node: n.GetName(), op: n.GetOpType(), slot: -1})
			}
		}
	}
	return out
}

func nonEmpty(s []string) []string {
	var out []string
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// modulePathName is the state-dict name a use implies: the module path in
// the node's name (/model/decoder/layers.0/fc1/MatMul is in module
// model.decoder.layers.0.fc1) and the operand the initializer is (a
// MatMul's right operand is a Linear weight, held transposed; an Add's
// operand its bias; a Gather's table an Embedding weight; a norm's scale
// and shift its weight and bias).
func modulePathName(u use, rank int) (name string, transposed bool, ok bool) {
	if !strings.HasPrefix(u.node, "/") || u.slot < 0 {
		return "", false, false
	}
	parts := strings.Split(strings.TrimPrefix(u.node, "/"), "/")
	if len(parts) < 2 {
		return "", false, false // a node of the top module: no submodule owns it
	}
	module := strings.Join(parts[:len(parts)-1], ".")
	leaf := ""
	switch u.op {
	case "MatMul":
		if u.slot == 1 && rank == 2 {
			leaf, transposed = "weight", true
		}
	case "Gemm":
		switch u.slot {
		case 1:
			leaf, transposed = "weight", !u.transB
		case 2:
			leaf = "bias"
		}
	case "Add":
		if rank == 1 {
			leaf = "bias"
		}
	case "Gather":
		if u.slot == 0 && rank == 2 {
			leaf = "weight"
		}
	case "LayerNormalization", "SimplifiedLayerNormalization", "BatchNormalization":
		switch u.slot {
		case 1:
			leaf = "weight"
		case 2:
			leaf = "bias"
		}
	case "Mul":
		if rank == 1 {
			leaf = "weight" // RMS norms (T5LayerNorm) scale by their weight
		}
	case "Conv", "ConvTranspose":
		switch u.slot {
		case 1:
			leaf = "weight"
		case 2:
			leaf = "bias"
		}
	}
	if leaf == "" || stateDictName(module+"."+leaf) == "" {
		return "", false, false
	}
	return module + "." + leaf, transposed, true
}

// usesName is the single name all uses of an initializer imply, if they agree.
func usesName(uses []use, rank int) (string, bool, bool) {
	name, tr, found := "", false, false
	for _, u := range uses {
		n, t, ok := modulePathName(u, rank)
		if !ok {
			return "", false, false
		}
		if found && (n != name || t != tr) {
			return "", false, false
		}
		name, tr, found = n, t, true
	}
	return name, tr, found
}

// identified is the outcome of identify.
type identified struct {
	params    []Parameter
	unmatched []Unmatched
	notes     []string
}

// identify names every candidate initializer after the model's own
// (PyTorch state-dict) tensor, so that parameter identity never rests on
// chance:
//
//  1. by its own name when that is a state-dict name (TorchScript keeps the
//     names of the parameters it does not fold) or by --param-name;
//  2. as an alias when it is a folded copy of another initializer, i.e.
//     holds the same values or their transpose (a tied lm_head), where
//     those values identify a tensor (not all equal, unique in the graph);
//  3. by the module path of the nodes that read it (/model/encoder/layers.0/
//     self_attn/q_proj/MatMul reads model.encoder.layers.0.self_attn.q_proj.weight,
//     transposed);
//  4. with a weights file, by values: the one tensor of the file that holds
//     the same values or their transpose.
//
// With a weights file every name found in steps 1 and 3 must hold the
// file's values (anything else means the file is another model's); names
// the file lacks become frozen parameters, and values the file holds under
// several names do not decide. Whatever stays unknown is returned as
// unmatched, to be kept as a constant and reported.
func identify(g *onnxpb.GraphProto, cands []candidate, w *safetensors.File, weightsPath string, byHand map[string]string) (*identified, error) {
	uses := initializerUses(g)
	out := &identified{}
	type slot struct {
		p       *Parameter
		raw     []byte // the primary initializer's values (graph layout)
		onnx    string
		aliases map[string]bool
	}
	byName := map[string]*slot{}
	var order []*slot
	done := make([]bool, len(cands))
	named := map[int]bool{} // state-dict name, absent from the weights file
	hf := map[string]safetensors.Tensor{}
	if w != nil {
		for _, n := range w.Names() {
			if t := w.Tensors[n]; t.DType == safetensors.Float32 {
				hf[n] = t
			}
		}
	}
	for from := range byHand {
		found := false
		for _, c := range cands {
			found = found || c.onnxName == from
		}
		if !found {
			return nil, fault.Settingsf("--param-name %s=%s: the graph has no float initializer %q", from, byHand[from], from)
		}
	}

	// claim makes cands[i] the parameter name (or an alias of it).
	claim := func(i int, name string, transposed bool, by string) {
		c := cands[i]
		done[i] = true
		if s, ok := byName[name]; ok {
			tr, same := sameTensor(s.p.Shape, s.raw, c.shape, c.raw)
			if !same {
				out.unmatched = append(out.unmatched, unmatchedOf(c, uses, fmt.Sprintf("its %s says %s, which initializer %s already is (with other values)", by, name, s.onnx)))
				return
			}
			s.p.Aliases = append(s.p.Aliases, Alias{ONNXName: c.onnxName, Transposed: tr})
			return
		}
		p := &Parameter{Name: name, Shape: c.shape, DType: "float32", Transposed: transposed, MatchedBy: by}
		if c.onnxName != name {
			p.ONNXName = c.onnxName
		}
		s := &slot{p: p, raw: c.raw, onnx: c.onnxName}
		byName[name] = s
		order = append(order, s)
	}
	// checkFile verifies a name against the weights file; it reports
	// whether the file has it and the layout the graph holds it in.
	checkFile := func(c candidate, name, by string) (bool, bool, error) {
		t, ok := hf[name]
		if !ok {
			return false, false, nil
		}
		if tr, same := sameTensor(c.shape, c.raw, t.Shape, t.Data); same {
			return true, tr, nil
		}
		return true, false, fault.Inputf("unusable model: initializer %q (%s %s) holds other values than %s %v in %s: the weights file belongs to another model (or another version of this one); use the model.safetensors that was saved with this export, or pass --weights FILE",
			c.onnxName, by, name, name, t.Shape, weightsPath)
	}

	// 1. Own names.
	for i, c := range cands {
		name, by := stateDictName(c.onnxName), ByName
		if h, ok := byHand[c.onnxName]; ok {
			name, by = h, ByHand
		}
		if name == "" {
			continue
		}
		if w == nil {
			claim(i, name, false, by)
			continue
		}
		inFile, tr, err := checkFile(c, name, "named")
		if err != nil {
			return nil, err
		}
		if !inFile {
			if by == ByHand {
				return nil, fault.Settingsf("--param-name %s=%s: %s has no tensor %q", c.onnxName, name, weightsPath, name)
			}
			named[i] = true
			continue
		}
		claim(i, name, tr, by)
	}
	// 2. Folded copies of the initializers named so far.
	type held struct {
		s  *slot
		tr bool
	}
	copies := map[contentKey][]held{}
	for _, s := range order {
		if constantFilled(s.raw) {
			continue
		}
		copies[keyOf(s.p.Shape, s.raw)] = append(copies[keyOf(s.p.Shape, s.raw)], held{s, false})
		if len(s.p.Shape) == 2 {
			k := keyOf([]int64{s.p.Shape[1], s.p.Shape[0]}, transpose2D(s.raw, s.p.Shape[0], s.p.Shape[1]))
			copies[k] = append(copies[k], held{s, true})
		}
	}
	for i, c := range cands {
		if done[i] || named[i] || constantFilled(c.raw) {
			continue
		}
		if hs := copies[keyOf(c.shape, c.raw)]; len(hs) == 1 {
			done[i] = true
			hs[0].s.p.Aliases = append(hs[0].s.p.Aliases, Alias{ONNXName: c.onnxName, Transposed: hs[0].tr})
		}
	}
	// 3. Module paths.
	for i, c := range cands {
		if done[i] || named[i] {
			continue
		}
		name, tr, ok := usesName(uses[c.onnxName], len(c.shape))
		if !ok {
			continue
		}
		if w == nil {
			claim(i, name, tr, ByModulePath)
			continue
		}
		inFile, ftr, err := checkFile(c, name, "read by "+firstUse(uses[c.onnxName])+" as")
		if err != nil {
			return nil, err
		}
		if inFile {
			claim(i, name, ftr, ByModulePath)
		}
	}
	if w != nil {
		// 4. Values in the weights file.
		direct := map[contentKey][]string{}
		transposed := map[contentKey][]string{}
		for _, n := range slices.Sorted(maps.Keys(hf)) {
			t := hf[n]
			direct[keyOf(t.Shape, t.Data)] = append(direct[keyOf(t.Shape, t.Data)], n)
			if len(t.Shape) == 2 {
				k := keyOf([]int64{t.Shape[1], t.Shape[0]}, transpose2D(t.Data, t.Shape[0], t.Shape[1]))
				transposed[k] = append(transposed[k], n)
			}
		}
		for i, c := range cands {
			if done[i] {
				continue
			}
			k := keyOf(c.shape, c.raw)
			names := slices.Compact(slices.Sorted(slices.Values(append(append([]string{}, direct[k]...), transposed[k]...))))
			switch len(names) {
			case 0:
				continue
			case 1:
				claim(i, names[0], !slices.Contains(direct[k], names[0]), ByContent)
			default:
				if named[i] {
					continue
				}
				done[i] = true
				out.unmatched = append(out.unmatched, unmatchedOf(c, uses, fmt.Sprintf("%d tensors of %s hold these values (%s) and its node names do not say which", len(names), baseName(weightsPath), strings.Join(names, ", "))))
			}
		}
		// 5. Named tensors the file lacks: parameters by name, kept frozen.
		for i, c := range cands {
			if done[i] || !named[i] {
				continue
			}
			claim(i, stateDictName(c.onnxName), false, ByName)
			byName[stateDictName(c.onnxName)].p.NotInWeights = true
		}
	}
	for i, c := range cands {
		if !done[i] && !slices.ContainsFunc(out.unmatched, func(u Unmatched) bool { return u.ONNXName == c.onnxName }) {
			reason := "neither its name nor the nodes reading it name a tensor of the model"
			if w != nil {
				reason = "no tensor of " + baseName(weightsPath) + " holds its values, and neither its name nor the nodes reading it name one"
			}
			out.unmatched = append(out.unmatched, unmatchedOf(c, uses, reason))
		}
	}
	for _, s := range order {
		out.params = append(out.params, *s.p)
		for _, a := range s.p.Aliases {
			how := "the values"
			if a.Transposed {
				how = "the transpose"
			}
			out.notes = append(out.notes, fmt.Sprintf("initializer %s holds %s of %s: one parameter (a tied weight or a copy the exporter folded)", a.ONNXName, how, s.p.Name))
		}
	}
	return out, nil
}

// sameTensor reports whether b holds a's values, directly or transposed
// (tr: b is a's transpose).
func sameTensor(aShape []int64, a []byte, bShape []int64, b []byte) (tr bool, same bool) {
	if slices.Equal(aShape, bShape) && bytes.Equal(a, b) {
		return false, true
	}
	if len(aShape) == 2 && len(bShape) == 2 && aShape[0] == bShape[1] && aShape[1] == bShape[0] && len(a) == len(b) &&
		bytes.Equal(transpose2D(a, aShape[0], aShape[1]), b) {
		return true, true
	}
	return false, false
}

func firstUse(us []use) string {
	if len(us) == 0 {
		return ""
	}
	return us[0].node
}

func unmatchedOf(c candidate, uses map[string][]use, reason string) Unmatched {
	return Unmatched{ONNXName: c.onnxName, Shape: c.shape, Bytes: int64(len(c.raw)), UsedBy: firstUse(uses[c.onnxName]), Reason: reason}
}
