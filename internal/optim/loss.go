package optim

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// Names of the loss graph's inputs and outputs.
const (
	Labels     = "labels"      // INT64 [batch, target]: -100 marks positions without a loss
	Loss       = "loss"        // FLOAT scalar: loss_sum / token_count (HF's training and eval loss)
	LossSum    = "loss_sum"    // FLOAT scalar: the loss summed over active tokens
	TokenCount = "token_count" // INT64 scalar: number of labels != -100
)

// IgnoreIndex is the label that contributes no loss (torch's default).
const IgnoreIndex = -100

// LossOptions configures AppendLoss.
type LossOptions struct {
	// LabelSmoothing is HF's label_smoothing_factor (0 = plain cross entropy).
	LabelSmoothing float64
}

// AppendLoss adds HF's seq2seq loss on the graph output logits ([B,T,V]
// float32) to g: a labels input and the Loss, LossSum and TokenCount
// outputs. Without smoothing the loss is torch's
// CrossEntropyLoss(ignore_index=-100) mean; with smoothing eps it is
// transformers' LabelSmoother: (1-eps)*nll + eps*smooth, where nll is the
// mean negative log-likelihood over active tokens and smooth is the sum over
// active tokens and the vocabulary of -log_softmax divided by
// (active tokens * vocabulary size). LossSum is the loss times the token
// count, so losses of uneven batches aggregate exactly. With no active
// token the loss is NaN, as in torch. The default-domain opset of the graph
// must be at least 13 (axes as inputs of ReduceSum, Squeeze, Unsqueeze).
func AppendLoss(g *onnxpb.GraphProto, logits string, opts LossOptions) error {
	if opts.LabelSmoothing < 0 || opts.LabelSmoothing >= 1 {
		return fmt.Errorf("label smoothing %v must be in [0, 1)", opts.LabelSmoothing)
	}
	if !producesOrHolds(g, logits) {
		return fmt.Errorf("loss: the graph has no value %q to take the loss of", logits)
	}
	for _, v := range g.GetInput() {
		if v.GetName() == Labels {
			return fmt.Errorf("loss: the graph already has an input named %q", Labels)
		}
	}
	b := newBuilder(g, "loss/")
	for _, n := range []string{Loss, LossSum, TokenCount} {
		if b.used[n] {
			return fmt.Errorf("loss: the graph already has a value named %q", n)
		}
	}
	g.Input = append(g.Input, valueInfo(Labels, onnxpb.TensorProto_INT64, []int64{-1, -1}, []string{"batch_size", "decoder_sequence_length"}))

	logProbs := b.op("LogSoftmax", []string{logits}, attrInt("axis", -1))
	active := b.op("Not", []string{b.op("Equal", []string{Labels, b.scalarI64(IgnoreIndex)})})
	activeF := b.cast(active, float)
	// HF clamps labels at 0 so that the gather stays in range; the mask drops them.
	safe := b.op("Max", []string{Labels, b.scalarI64(0)})
	lastAxis := b.vecI64(-1)
	picked := b.op("GatherElements", []string{logProbs, b.op("Unsqueeze", []string{safe, lastAxis})}, attrInt("axis", -1))
	nll := b.op("Neg", []string{b.op("Squeeze", []string{picked, lastAxis})})
	nllSum := b.op("ReduceSum", []string{b.op("Mul", []string{nll, activeF})}, attrInt("keepdims", 0))
	count := b.op("ReduceSum", []string{activeF}, attrInt("keepdims", 0))
	b.opTo("Cast", []string{count}, TokenCount, attrInt("to", int64(onnxpb.TensorProto_INT64)))

	if eps := opts.LabelSmoothing; eps > 0 {
		smooth := b.op("Neg", []string{b.op("ReduceSum", []string{logProbs, lastAxis}, attrInt("keepdims", 0))})
		smoothSum := b.op("ReduceSum", []string{b.op("Mul", []string{smooth, activeF})}, attrInt("keepdims", 0))
		vocab := b.cast(b.op("Gather", []string{b.op("Shape", []string{logits}), b.scalarI64(-1)}), float)
		a := b.op("Mul", []string{nllSum, b.scalarF32(float32(1 - eps))})
		s := b.op("Div", []string{b.op("Mul", []string{smoothSum, b.scalarF32(float32(eps))}), vocab})
		b.opTo("Add", []string{a, s}, LossSum)
	} else {
		b.opTo("Identity", []string{nllSum}, LossSum)
	}
	b.opTo("Div", []string{LossSum, count}, Loss)
	g.Output = append(g.Output,
		valueInfo(Loss, float, nil, nil),
		valueInfo(LossSum, float, nil, nil),
		valueInfo(TokenCount, onnxpb.TensorProto_INT64, nil, nil))
	return nil
}

func producesOrHolds(g *onnxpb.GraphProto, name string) bool {
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			if o == name {
				return true
			}
		}
	}
	for _, v := range g.GetInput() {
		if v.GetName() == name {
			return true
		}
	}
	return false
}

// LossModel returns a standalone model computing the loss of a logits input
// ([batch, target, vocab] float32); useful to test the loss by itself.
func LossModel(opts LossOptions) (*onnxpb.ModelProto, error) {
	g := &onnxpb.GraphProto{Name: proto.String("ortrain_loss")}
	g.Input = append(g.Input, valueInfo("logits", float, []int64{-1, -1, -1}, []string{"batch_size", "decoder_sequence_length", "vocab"}))
	if err := AppendLoss(g, "logits", opts); err != nil {
		return nil, err
	}
	return newModel(g, Opset), nil
}
