package autodiff

import (
	"fmt"
	"strings"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Checkpoint asks Backward for gradient checkpointing: the forward values
// that the backward nodes of each segment read are recomputed from the
// segment's inputs in the backward pass instead of being kept from the
// forward pass, so ONNX Runtime frees them as soon as the forward pass is
// done with them.
type Checkpoint struct {
	// Segments are runs of forward nodes (one transformer layer each),
	// [Start, End) indices into the graph's nodes when Backward is called.
	Segments []Segment
	// Weights names the graph inputs that hold weights. Values computed from
	// weights and constants alone are the same in every step and are read
	// as they are; everything depending on another input (the batch, the
	// dropout seed) is recomputed.
	Weights []string
	// Recomputed is filled by Backward: the number of nodes recomputed for
	// each segment (0: nothing of it is read by the backward pass, or it
	// holds an operator whose result is not a function of its inputs).
	Recomputed []int
}

// Segment is a run of forward nodes recomputed together.
type Segment struct {
	Name       string
	Start, End int
}

// gateable element types: Where has CPU and CUDA kernels for them.
func gateable(dt onnx.DType) bool {
	return dt == tFloat32 || dt == tFloat64 || dt == tInt64 || dt == tInt32 || dt == onnx.Uint8
}

// nondeterministic operators give another result when run again.
func nondeterministic(n *onnxpb.NodeProto) bool {
	op := n.GetOpType()
	return strings.HasPrefix(op, "Random") || op == "Multinomial" || op == "Bernoulli" || op == "Dropout"
}

// recompute rewrites the joint graph (the first fwd nodes are the forward
// pass, the rest the backward pass Backward appended) for cp. grads maps
// each forward value to its gradient where Backward computed one.
//
// For each segment, the recomputed copies are fed from the segment's
// inputs through Where(c, x, x) — x itself, exactly, for any c — where c is
// derived from one element of the gradient of the segment's last output.
// That data dependency makes every recomputation wait until the backward
// pass reaches the segment, whatever order ONNX Runtime picks, so the copies
// live only while the segment's gradients are computed. The copies run the
// same operators on the same values (dropout masks are functions of the
// seed input: see EnableTrainingDropout), so the gradients are bit for bit
// those without checkpointing.
func (c *ctx) recompute(cp *Checkpoint, fwd int, grads map[string][]string) error {
	g := c.g
	weights := map[string]bool{}
	for _, w := range cp.Weights {
		weights[w] = true
	}
	// dynamic: values that change from step to step.
	dynamic := map[string]bool{}
	for _, in := range g.Input {
		if !weights[in.GetName()] {
			dynamic[in.GetName()] = true
		}
	}
	// fromWeights: values computed from weights alone (a transposed or
	// cast weight); recomputed too, since they are as large as the weights
	// and the forward pass would otherwise keep them for the backward pass.
	fromWeights := map[string]bool{}
	for _, w := range cp.Weights {
		fromWeights[w] = true
	}
	producerIdx := map[string]int{}
	isDynamic := make([]bool, fwd)
	isFromWeights := make([]bool, fwd)
	for i := 0; i < fwd; i++ {
		n := g.Node[i]
		for _, in := range c.nodeInputs(n) {
			if dynamic[in] {
				isDynamic[i] = true
				break
			}
			if fromWeights[in] {
				isFromWeights[i] = true
			}
		}
		isFromWeights[i] = isFromWeights[i] && !isDynamic[i]
		for _, o := range n.Output {
			if o == "" {
				continue
			}
			producerIdx[o] = i
			dynamic[o] = isDynamic[i]
			fromWeights[o] = isFromWeights[i]
		}
	}
	backward := append([]*onnxpb.NodeProto{}, g.Node[fwd:]...)
	allProducers := map[string]*onnxpb.NodeProto{}
	for _, n := range g.Node {
		for _, o := range n.Output {
			allProducers[o] = n
		}
	}
	cp.Recomputed = make([]int, len(cp.Segments))
	saved := c.prefix
	c.prefix = "recompute/"
	defer func() { c.prefix = saved }()
	var added []*onnxpb.NodeProto
	for si, s := range cp.Segments {
		if s.Start < 0 || s.End > fwd || s.Start >= s.End {
			return fmt.Errorf("autodiff: checkpoint segment %q [%d, %d) outside the forward graph's %d nodes", s.Name, s.Start, s.End, fwd)
		}
		inSeg := func(i int) bool { return i >= s.Start && i < s.End && (isDynamic[i] || isFromWeights[i]) }
		// The trigger: the gradient of the segment's last output that has one.
		trigger := ""
		for i := s.End - 1; i >= s.Start && trigger == ""; i-- {
			if !isDynamic[i] {
				continue
			}
			for _, o := range g.Node[i].Output {
				if gs := grads[o]; o != "" && len(gs) == 1 {
					trigger = gs[0]
					break
				}
			}
		}
		if trigger == "" {
			continue
		}
		// Backward nodes the trigger depends on must keep reading the
		// originals (reading copies would make a cycle).
		feedsTrigger := map[*onnxpb.NodeProto]bool{}
		stack := []string{trigger}
		seen := map[string]bool{trigger: true}
		for len(stack) > 0 {
			v := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			p := allProducers[v]
			if p == nil {
				continue
			}
			if _, fwdValue := producerIdx[v]; fwdValue {
				continue
			}
			feedsTrigger[p] = true
			for _, in := range c.nodeInputs(p) {
				if !seen[in] {
					seen[in] = true
					stack = append(stack, in)
				}
			}
		}
		// The values to recompute: read by the backward pass, made in the segment.
		var readers []*onnxpb.NodeProto
		want := map[int]bool{}
		for _, n := range backward {
			if feedsTrigger[n] {
				continue
			}
			reads := false
			for _, in := range n.Input {
				if i, ok := producerIdx[in]; ok && inSeg(i) {
					want[i], reads = true, true
				}
			}
			if reads {
				readers = append(readers, n)
			}
		}
		if len(want) == 0 {
			continue
		}
		// Close over the producers inside the segment; values of a type
		// Where cannot pass are recomputed from their own producers.
		clone := map[int]bool{}
		var gates []string
		gated := map[string]bool{}
		ok := true
		var visit func(i int)
		visit = func(i int) {
			if clone[i] || !ok {
				return
			}
			n := g.Node[i]
			if nondeterministic(n) || len(n.Input) < len(c.nodeInputs(n)) {
				ok = false // a subgraph or a random draw: keep this segment as it is
				return
			}
			clone[i] = true
			for _, in := range n.Input {
				if in == "" || !dynamic[in] && !fromWeights[in] {
					continue
				}
				j, fromNode := producerIdx[in]
				switch {
				case fromNode && inSeg(j):
					visit(j)
				case isDynamic[i] && !dynamic[in]:
					// weights and what is computed from them outside the
					// layer are read as they are
				case gateable(c.info(in).Elem):
					if !gated[in] {
						gated[in] = true
						gates = append(gates, in)
					}
				case fromNode:
					visit(j)
				}
			}
		}
		for i := s.Start; i < s.End; i++ {
			if want[i] {
				visit(i)
			}
		}
		if !ok {
			continue
		}
		c.newNodes = nil
		// c = IsNaN(ReduceSum(Cast(first element of trigger))): any
		// boolean computed from the trigger will do.
		flat := c.op("Reshape", []string{trigger, c.ints([]int64{-1})})
		first := c.op("Slice", []string{flat, c.ints([]int64{0}), c.ints([]int64{1})})
		sum := c.op("ReduceSum", []string{c.op("Cast", []string{first}, intAttr("to", int64(tFloat32))), c.ints([]int64{0})}, intAttr("keepdims", 0))
		cond := c.op("IsNaN", []string{sum})
		rename := map[string]string{}
		for _, x := range gates {
			rename[x] = c.op("Where", []string{cond, x, x})
		}
		count := 0
		for i := 0; i < fwd; i++ {
			if !clone[i] {
				continue
			}
			n := proto.Clone(g.Node[i]).(*onnxpb.NodeProto)
			n.Name = proto.String(c.fresh(g.Node[i].GetName()))
			for j, in := range n.Input {
				if r, ok := rename[in]; ok {
					n.Input[j] = r
				}
			}
			for j, o := range n.Output {
				if o == "" {
					continue
				}
				r := c.fresh(o)
				rename[o] = r
				n.Output[j] = r
			}
			c.newNodes = append(c.newNodes, n)
			count++
		}
		for _, n := range readers {
			for j, in := range n.Input {
				if i, ok := producerIdx[in]; ok && clone[i] {
					n.Input[j] = rename[in]
				}
			}
		}
		for _, n := range c.newNodes {
			for _, o := range n.Output {
				allProducers[o] = n
			}
		}
		added = append(added, c.newNodes...)
		c.newNodes = nil
		cp.Recomputed[si] = count
	}
	if len(added) == 0 {
		return nil
	}
	g.Node = append(g.Node, added...)
	return onnx.TopoSort(g)
}
