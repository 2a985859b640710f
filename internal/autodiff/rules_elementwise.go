package autodiff

import (
	"fmt"
	"math"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

func init() {
	register("Identity", nil, func(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
		return []string{gy[0]}, nil
	})
	register("Add", nil, vjpAdd)
	register("Sub", nil, vjpSub)
	register("Mul", nil, vjpMul)
	register("Div", nil, vjpDiv)
	register("Pow", nil, vjpPow)
	register("Neg", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		return c.op("Neg", []string{g}), nil
	}))
	register("Sqrt", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		// d sqrt(x) = 1 / (2 y)
		half, err := c.scalarLike(g0(n), 0.5)
		if err != nil {
			return "", err
		}
		return c.op("Div", []string{c.op("Mul", []string{g, half}), n.Output[0]}), nil
	}))
	register("Reciprocal", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		y := n.Output[0]
		return c.op("Neg", []string{c.op("Mul", []string{g, c.op("Mul", []string{y, y})})}), nil
	}))
	register("Exp", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		return c.op("Mul", []string{g, n.Output[0]}), nil
	}))
	register("Log", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		return c.op("Div", []string{g, n.Input[0]}), nil
	}))
	register("Tanh", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		one, err := c.scalarLike(g0(n), 1)
		if err != nil {
			return "", err
		}
		y := n.Output[0]
		return c.op("Mul", []string{g, c.op("Sub", []string{one, c.op("Mul", []string{y, y})})}), nil
	}))
	register("Sigmoid", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		one, err := c.scalarLike(g0(n), 1)
		if err != nil {
			return "", err
		}
		y := n.Output[0]
		return c.op("Mul", []string{c.op("Mul", []string{g, y}), c.op("Sub", []string{one, y})}), nil
	}))
	register("Erf", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		// d erf(x) = 2/sqrt(pi) exp(-x^2)
		k, err := c.scalarLike(g0(n), 2/math.Sqrt(math.Pi))
		if err != nil {
			return "", err
		}
		x := n.Input[0]
		e := c.op("Exp", []string{c.op("Neg", []string{c.op("Mul", []string{x, x})})})
		return c.op("Mul", []string{g, c.op("Mul", []string{e, k})}), nil
	}))
	register("Relu", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		zero, err := c.scalarLike(g0(n), 0)
		if err != nil {
			return "", err
		}
		pos := c.op("Greater", []string{n.Output[0], zero})
		return c.op("Where", []string{pos, g, zero}), nil
	}))
	register("Abs", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		return c.op("Mul", []string{g, c.op("Sign", []string{n.Input[0]})}), nil
	}))
	register("Gelu", nil, vjpGelu)
	register("com.microsoft::Gelu", nil, vjpGelu)
	register("com.microsoft::FastGelu", nil, vjpFastGelu)
	register("Cast", nil, func(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
		dt := c.info(n.Input[0]).Elem
		if !isFloat(dt) {
			return nil, nil
		}
		if dt == c.info(n.Output[0]).Elem {
			return []string{gy[0]}, nil
		}
		return []string{c.op("Cast", []string{gy[0]}, intAttr("to", int64(dt)))}, nil
	})
	register("CastLike", []int{0}, func(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
		return []string{c.op("CastLike", []string{gy[0], n.Input[0]})}, nil
	})
	register("Where", []int{1, 2}, vjpWhere)
	register("Min", nil, vjpMinMax)
	register("Max", nil, vjpMinMax)
	register("Sum", nil, func(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
		out := make([]string, len(n.Input))
		for i := range n.Input {
			if need[i] {
				g, err := c.unb(n, gy[0], i)
				if err != nil {
					return nil, err
				}
				out[i] = g
			}
		}
		return out, nil
	})
	register("Clip", nil, vjpClip)
}

// g0 is the first input of n (whose element type the constants take).
func g0(n *onnxpb.NodeProto) string { return n.Input[0] }

// unary wraps a one-input rule.
func unary(f func(c *ctx, n *onnxpb.NodeProto, g string) (string, error)) vjpFunc {
	return func(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
		if gy[0] == "" || !need[0] {
			return nil, nil
		}
		g, err := f(c, n, gy[0])
		return []string{g}, err
	}
}

func vjpAdd(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	out := make([]string, 2)
	for i := 0; i < 2; i++ {
		if need[i] {
			g, err := c.unb(n, gy[0], i)
			if err != nil {
				return nil, err
			}
			out[i] = g
		}
	}
	return out, nil
}

func vjpSub(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	out, err := vjpAdd(c, n, gy, need)
	if err != nil {
		return nil, err
	}
	if out[1] != "" {
		// Negate after reducing: fewer elements.
		out[1] = c.op("Neg", []string{out[1]})
	}
	return out, nil
}

func vjpMul(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	out := make([]string, 2)
	for i := 0; i < 2; i++ {
		if !need[i] {
			continue
		}
		g, err := c.unb(n, c.op("Mul", []string{gy[0], n.Input[1-i]}), i)
		if err != nil {
			return nil, err
		}
		out[i] = g
	}
	return out, nil
}

func vjpDiv(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	// y = a/b: da = g/b, db = -(g/b) * y
	out := make([]string, 2)
	t := c.op("Div", []string{gy[0], n.Input[1]})
	var err error
	if need[0] {
		if out[0], err = c.unb(n, t, 0); err != nil {
			return nil, err
		}
	}
	if need[1] {
		gb, err := c.unb(n, c.op("Mul", []string{t, n.Output[0]}), 1)
		if err != nil {
			return nil, err
		}
		out[1] = c.op("Neg", []string{gb})
	}
	return out, nil
}

func vjpPow(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	a, b, y := n.Input[0], n.Input[1], n.Output[0]
	out := make([]string, 2)
	if need[0] {
		// da = g * b * a^(b-1); with a constant exponent b-1 is folded.
		var t string
		if v, ok := c.constFloats(b); ok && len(v) == 1 {
			switch v[0] {
			case 1:
				t = gy[0]
			case 2:
				two, err := c.scalarLike(a, 2)
				if err != nil {
					return nil, err
				}
				t = c.op("Mul", []string{gy[0], c.op("Mul", []string{a, two})})
			default:
				k, err := c.scalarLike(a, v[0])
				if err != nil {
					return nil, err
				}
				e, err := c.scalarLike(a, v[0]-1)
				if err != nil {
					return nil, err
				}
				t = c.op("Mul", []string{gy[0], c.op("Mul", []string{c.op("Pow", []string{a, e}), k})})
			}
		} else {
			one, err := c.scalarLike(b, 1)
			if err != nil {
				return nil, err
			}
			bb := b
			if c.info(b).Elem != c.info(a).Elem {
				bb = c.op("Cast", []string{b}, intAttr("to", int64(c.info(a).Elem)))
			}
			t = c.op("Mul", []string{gy[0], c.op("Mul", []string{bb, c.op("Pow", []string{a, c.op("Sub", []string{b, one})})})})
		}
		g, err := c.unb(n, t, 0)
		if err != nil {
			return nil, err
		}
		out[0] = g
	}
	if need[1] {
		// db = g * y * ln(a)
		g, err := c.unb(n, c.op("Mul", []string{c.op("Mul", []string{gy[0], y}), c.op("Log", []string{a})}), 1)
		if err != nil {
			return nil, err
		}
		out[1] = g
	}
	return out, nil
}

func vjpWhere(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	out := make([]string, 3)
	zero, err := c.scalarLike(n.Output[0], 0)
	if err != nil {
		return nil, err
	}
	if need[1] {
		if out[1], err = c.unb(n, c.op("Where", []string{n.Input[0], gy[0], zero}), 1); err != nil {
			return nil, err
		}
	}
	if need[2] {
		if out[2], err = c.unb(n, c.op("Where", []string{n.Input[0], zero, gy[0]}), 2); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// vjpMinMax sends the gradient to the inputs equal to the result, split
// evenly among ties (as torch.maximum / torch.minimum do).
func vjpMinMax(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	out := make([]string, len(n.Input))
	if len(n.Input) == 1 {
		out[0] = gy[0]
		return out, nil
	}
	y := n.Output[0]
	dt := c.info(y).Elem
	masks := make([]string, len(n.Input))
	for i, in := range n.Input {
		masks[i] = c.op("Cast", []string{c.op("Equal", []string{in, y})}, intAttr("to", int64(dt)))
	}
	count := c.op("Sum", masks)
	share := c.op("Div", []string{gy[0], count})
	for i := range n.Input {
		if !need[i] {
			continue
		}
		g, err := c.unb(n, c.op("Mul", []string{share, masks[i]}), i)
		if err != nil {
			return nil, err
		}
		out[i] = g
	}
	return out, nil
}

// vjpClip passes the gradient where min <= x <= max (torch.clamp); the
// bounds get the gradient of the elements they clipped.
func vjpClip(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	x := n.Input[0]
	var lo, hi string
	if len(n.Input) > 1 {
		lo = n.Input[1]
	}
	if len(n.Input) > 2 {
		hi = n.Input[2]
	}
	if c.opset < 11 {
		return nil, fmt.Errorf("Clip before opset 11 is not supported")
	}
	zero, err := c.scalarLike(x, 0)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(n.Input))
	var inside string
	var below, above string
	if lo != "" {
		below = c.op("Less", []string{x, lo})
	}
	if hi != "" {
		above = c.op("Greater", []string{x, hi})
	}
	switch {
	case below != "" && above != "":
		inside = c.op("Not", []string{c.op("Or", []string{below, above})})
	case below != "":
		inside = c.op("Not", []string{below})
	case above != "":
		inside = c.op("Not", []string{above})
	}
	if need[0] {
		if inside == "" {
			out[0] = gy[0]
		} else {
			out[0] = c.op("Where", []string{inside, gy[0], zero})
		}
	}
	bound := func(mask string) string {
		// torch gives ties to x; the bound gets the strictly clipped part.
		return c.reduce("ReduceSum", c.op("Where", []string{mask, gy[0], zero}), allAxes(c.info(x).Rank()), false)
	}
	if len(n.Input) > 1 && need[1] && below != "" {
		out[1] = bound(below)
	}
	if len(n.Input) > 2 && need[2] && above != "" {
		out[2] = bound(above)
	}
	return out, nil
}

func allAxes(r int) []int {
	a := make([]int, max(r, 0))
	for i := range a {
		a[i] = i
	}
	return a
}

// vjpGelu: exact Gelu (erf) or its tanh approximation (attribute approximate).
func vjpGelu(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	if !need[0] {
		return nil, nil
	}
	x := n.Input[0]
	if attrString(n, "approximate", "none") == "tanh" {
		g, err := geluTanhGrad(c, x, gy[0])
		return []string{g}, err
	}
	// d/dx x*Phi(x) = Phi(x) + x*phi(x)
	k := func(v float64) string {
		s, _ := c.scalarLike(x, v)
		return s
	}
	if c.info(x).Elem == onnx.Undefined {
		return nil, fmt.Errorf("element type of %q unknown", x)
	}
	cdf := c.op("Mul", []string{c.op("Add", []string{c.op("Erf", []string{c.op("Mul", []string{x, k(1 / math.Sqrt2)})}), k(1)}), k(0.5)})
	pdf := c.op("Mul", []string{c.op("Exp", []string{c.op("Mul", []string{c.op("Mul", []string{x, x}), k(-0.5)})}), k(1 / math.Sqrt(2*math.Pi))})
	d := c.op("Add", []string{cdf, c.op("Mul", []string{x, pdf})})
	return []string{c.op("Mul", []string{gy[0], d})}, nil
}

func geluTanhGrad(c *ctx, x, g string) (string, error) {
	if c.info(x).Elem == onnx.Undefined {
		return "", fmt.Errorf("element type of %q unknown", x)
	}
	k := func(v float64) string {
		s, _ := c.scalarLike(x, v)
		return s
	}
	// y = 0.5 x (1 + tanh(u)), u = s (x + a x^3)
	s, a := math.Sqrt(2/math.Pi), 0.044715
	x2 := c.op("Mul", []string{x, x})
	u := c.op("Mul", []string{c.op("Mul", []string{x, c.op("Add", []string{c.op("Mul", []string{x2, k(a)}), k(1)})}), k(s)})
	t := c.op("Tanh", []string{u})
	du := c.op("Mul", []string{c.op("Add", []string{c.op("Mul", []string{x2, k(3 * a)}), k(1)}), k(s)})
	sech2 := c.op("Sub", []string{k(1), c.op("Mul", []string{t, t})})
	d := c.op("Mul", []string{c.op("Add", []string{c.op("Add", []string{t, k(1)}), c.op("Mul", []string{c.op("Mul", []string{x, sech2}), du})}), k(0.5)})
	return c.op("Mul", []string{g, d}), nil
}

// vjpFastGelu: com.microsoft FastGelu(X, bias?) = tanh-Gelu(X + bias).
func vjpFastGelu(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
	x := n.Input[0]
	if len(n.Input) > 1 && n.Input[1] != "" {
		x = c.op("Add", []string{n.Input[0], n.Input[1]})
		c.infos[x] = c.info(n.Output[0]) // X + bias has the output's type
	}
	g, err := geluTanhGrad(c, x, gy[0])
	if err != nil {
		return nil, err
	}
	out := make([]string, len(n.Input))
	if need[0] {
		out[0] = g
	}
	if len(n.Input) > 1 && need[1] {
		if out[1], err = c.unbroadcast(g, c.info(n.Output[0]), n.Input[1]); err != nil {
			return nil, err
		}
	}
	return out, nil
}
