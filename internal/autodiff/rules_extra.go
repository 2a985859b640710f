package autodiff

import (
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// Less common differentiable ops seen in other seq2seq exports.
func init() {
	register("Sin", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		return c.op("Mul", []string{g, c.op("Cos", []string{n.Input[0]})}), nil
	}))
	register("Cos", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		return c.op("Neg", []string{c.op("Mul", []string{g, c.op("Sin", []string{n.Input[0]})})}), nil
	}))
	register("Softplus", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		return c.op("Mul", []string{g, c.op("Sigmoid", []string{n.Input[0]})}), nil
	}))
	register("LeakyRelu", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		alpha, err := c.scalarLike(n.Input[0], float64(attrFloat(n, "alpha", 0.01)))
		if err != nil {
			return "", err
		}
		zero, err := c.scalarLike(n.Input[0], 0)
		if err != nil {
			return "", err
		}
		pos := c.op("Greater", []string{n.Input[0], zero})
		return c.op("Where", []string{pos, g, c.op("Mul", []string{g, alpha})}), nil
	}))
	register("Elu", nil, unary(func(c *ctx, n *onnxpb.NodeProto, g string) (string, error) {
		// x > 0: g; else g * (y + alpha), reusing the output.
		alpha, err := c.scalarLike(n.Input[0], float64(attrFloat(n, "alpha", 1)))
		if err != nil {
			return "", err
		}
		zero, err := c.scalarLike(n.Input[0], 0)
		if err != nil {
			return "", err
		}
		pos := c.op("Greater", []string{n.Input[0], zero})
		return c.op("Where", []string{pos, g, c.op("Mul", []string{g, c.op("Add", []string{n.Output[0], alpha})})}), nil
	}))
	register("Mean", nil, func(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
		k, err := c.scalarLike(n.Output[0], float64(len(n.Input)))
		if err != nil {
			return nil, err
		}
		share := c.op("Div", []string{gy[0], k})
		out := make([]string, len(n.Input))
		for i := range n.Input {
			if need[i] {
				if out[i], err = c.unb(n, share, i); err != nil {
					return nil, err
				}
			}
		}
		return out, nil
	})
	register("CumSum", []int{0}, func(c *ctx, n *onnxpb.NodeProto, gy []string, need []bool) ([]string, error) {
		// The transpose of a running sum is the running sum the other way.
		return []string{c.op("CumSum", []string{gy[0], n.Input[1]},
			intAttr("exclusive", attrInt(n, "exclusive", 0)), intAttr("reverse", 1-attrInt(n, "reverse", 0)))}, nil
	})
}
