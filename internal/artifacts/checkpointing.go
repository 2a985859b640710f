package artifacts

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ortrain/ortrain/internal/autodiff"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// Checkpointing records how the training graph recomputes activations
// (gradient checkpointing, HF's gradient_checkpointing /
// activation_checkpointing).
type Checkpointing struct {
	// Layers are the recomputed layers, by module path (encoder.block.3),
	// with the number of nodes recomputed for each.
	Layers []CheckpointedLayer `json:"layers"`
	How    string              `json:"how"`
}

// CheckpointedLayer is one layer the backward pass recomputes.
type CheckpointedLayer struct {
	Module     string `json:"module"`
	Recomputed int    `json:"recomputed_nodes"`
}

// layerKey splits a parameter name at its first all-digit component, the
// index into an nn.ModuleList: model.encoder.layers.3.fc1.weight is layer
// 3 of model.encoder.layers. ok is false for names outside a list.
func layerKey(name string) (stack string, index int, ok bool) {
	parts := strings.Split(name, ".")
	for i := 1; i < len(parts)-1; i++ {
		if n, err := strconv.Atoi(parts[i]); err == nil && n >= 0 && parts[i] == strconv.Itoa(n) {
			return strings.Join(parts[:i], "."), n, true
		}
	}
	return "", 0, false
}

// checkpointSegments finds the transformer layers of the forward graph g
// from the parameters' module paths: the parameters under one module list
// (encoder.block.N, model.decoder.layers.N, ...) are a stack of layers,
// which is what HF checkpoints (its
// GradientCheckpointingLayer modules: T5Block, BartEncoderLayer, ...). A
// layer's nodes run from the first node that reads one of its weights
// (directly or through weight-only nodes such as a Cast or Transpose) to the
// first node of the next layer; the last layer of a stack ends before the
// next node that reads another weight (the final layer norm). Which nodes
// fall at a boundary only moves a few cheap nodes between recomputed and
// kept: the gradients are the same either way.
func checkpointSegments(g *onnxpb.GraphProto, params []Parameter) (segs []autodiff.Segment, weights []string) {
	type layer struct {
		stack string
		index int
	}
	layerOf := map[string]layer{}
	isWeight := map[string]bool{}
	for _, p := range params {
		isWeight[p.Name], isWeight[NoGradName(p.Name)] = true, true
		weights = append(weights, p.Name, NoGradName(p.Name))
		if s, i, ok := layerKey(p.Name); ok {
			layerOf[p.Name], layerOf[NoGradName(p.Name)] = layer{s, i}, layer{s, i}
		}
	}
	if len(layerOf) == 0 {
		return nil, weights
	}
	dynamic := map[string]bool{}
	for _, in := range g.Input {
		if !isWeight[in.GetName()] {
			dynamic[in.GetName()] = true
		}
	}
	// weightTags: the layer (or -1: a weight outside every stack) whose
	// weights a weight-only value is computed from.
	const outside = "\x00"
	tags := map[string]map[layer]bool{}
	for name := range isWeight {
		l, ok := layerOf[name]
		if !ok {
			l = layer{outside, 0}
		}
		tags[name] = map[layer]bool{l: true}
	}
	first := map[layer]int{}
	last := map[layer]int{}
	var readsOther []int // positions of nodes reading weights outside every stack
	for i, n := range g.Node {
		dyn := false
		for _, in := range onnx.NodeInputs(n) {
			if dynamic[in] {
				dyn = true
			}
		}
		read := map[layer]bool{}
		for _, in := range onnx.NodeInputs(n) {
			for l := range tags[in] {
				read[l] = true
			}
		}
		if !dyn {
			for _, o := range n.Output {
				if len(read) > 0 {
					tags[o] = read
				}
			}
			continue
		}
		for _, o := range n.Output {
			dynamic[o] = true
		}
		for l := range read {
			if l.stack == outside {
				readsOther = append(readsOther, i)
				continue
			}
			if _, seen := first[l]; !seen {
				first[l] = i
			}
			last[l] = i
		}
	}
	var layers []layer
	for l := range first {
		layers = append(layers, l)
	}
	sort.Slice(layers, func(a, b int) bool { return first[layers[a]] < first[layers[b]] })
	for k, l := range layers {
		end := last[l] + 1
		if k+1 < len(layers) && layers[k+1].stack == l.stack {
			end = first[layers[k+1]]
		} else if j, _ := slices.BinarySearch(readsOther, last[l]+1); j < len(readsOther) {
			end = readsOther[j]
		}
		if k+1 < len(layers) && end > first[layers[k+1]] {
			end = first[layers[k+1]]
		}
		if end > first[l] {
			segs = append(segs, autodiff.Segment{Name: fmt.Sprintf("%s.%d", l.stack, l.index), Start: first[l], End: end})
		}
	}
	return segs, weights
}
