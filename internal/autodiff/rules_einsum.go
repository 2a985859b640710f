package autodiff

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// einsumEq is an Einsum equation with any ellipsis spelled out as letters.
type einsumEq struct {
	inputs []string
	output string
}

func (e einsumEq) String() string { return strings.Join(e.inputs, ",") + "->" + e.output }

// parseEinsum parses an equation; ranks (of the operands) are needed only
// to spell out "...".
func parseEinsum(eq string, ranks []int) (einsumEq, error) {
	eq = strings.ReplaceAll(eq, " ", "")
	lhs, rhs, explicit := strings.Cut(eq, "->")
	terms := strings.Split(lhs, ",")
	if len(terms) != len(ranks) {
		return einsumEq{}, fmt.Errorf("einsum %q has %d operands, node has %d inputs", eq, len(terms), len(ranks))
	}
	used := map[byte]bool{}
	for i := 0; i < len(eq); i++ {
		used[eq[i]] = true
	}
	// Fresh letters for ellipsis dims (upper case unused first).
	var spare []byte
	for ch := byte('A'); ch <= 'Z'; ch++ {
		if !used[ch] {
			spare = append(spare, ch)
		}
	}
	ell := 0
	for i, t := range terms {
		if strings.Contains(t, "...") {
			if ranks[i] < 0 {
				return einsumEq{}, fmt.Errorf("einsum %q: rank of operand %d unknown", eq, i)
			}
			ell = max(ell, ranks[i]-(len(t)-3))
		}
	}
	if ell > len(spare) {
		return einsumEq{}, fmt.Errorf("einsum %q: too many ellipsis dims", eq)
	}
	ellLetters := string(spare[:ell])
	out := einsumEq{}
	for i, t := range terms {
		if strings.Contains(t, "...") {
			k := ranks[i] - (len(t) - 3)
			t = strings.Replace(t, "...", ellLetters[ell-k:], 1)
		}
		out.inputs = append(out.inputs, t)
	}
	if explicit {
		out.output = strings.Replace(rhs, "...", ellLetters, 1)
	} else {
		count := map[byte]int{}
		for _, t := range out.inputs {
			for j := 0; j < len(t); j++ {
				count[t[j]]++
			}
		}
		var letters []byte
		for ch, k := range count {
			if k == 1 && !strings.ContainsRune(ellLetters, rune(ch)) {
				letters = append(letters, ch)
			}
		}
		sort.Slice(letters, func(a, b int) bool { return letters[a] < letters[b] })
		out.output = ellLetters + string(letters)
	}
	return out, nil
}

// vjpEinsum: the gradient of operand i is an Einsum of the output gradient
// with the other operands, producing operand i's subscripts; subscripts
// that only operand i has (summed away in the forward pass) are restored by
// broadcasting.
func vjpEinsum(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	eq, err := parseEinsum(attrString(n, "equation", ""), c.inputRanks(n))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(n.Input))
	for i, term := range eq.inputs {
		if !need[i] {
			continue
		}
		seen := map[byte]bool{}
		for j := 0; j < len(term); j++ {
			if seen[term[j]] {
				return nil, fmt.Errorf("einsum %q: repeated subscript %q in operand %d (diagonal) has no rule", eq, term[j], i)
			}
			seen[term[j]] = true
		}
		avail := map[byte]bool{}
		terms := []string{eq.output}
		ins := []string{gy[0]}
		for j := 0; j < len(eq.output); j++ {
			avail[eq.output[j]] = true
		}
		for k, t := range eq.inputs {
			if k == i {
				continue
			}
			terms = append(terms, t)
			ins = append(ins, n.Input[k])
			for j := 0; j < len(t); j++ {
				avail[t[j]] = true
			}
		}
		var target []byte
		var missing []int64
		for j := 0; j < len(term); j++ {
			if avail[term[j]] {
				target = append(target, term[j])
			} else {
				missing = append(missing, int64(j))
			}
		}
		g := c.op("Einsum", ins, stringAttr("equation", strings.Join(terms, ",")+"->"+string(target)))
		if len(missing) > 0 {
			g = c.op("Expand", []string{c.unsqueeze(g, missing), c.shapeVec(n.Input[i])})
		}
		out[i] = g
	}
	return out, nil
}
