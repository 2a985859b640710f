package ortdecoder

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

// Names of the gather graph's values.
const (
	gatherData = "data"
	gatherRows = "rows"
	gatherOut  = "gathered"
)

// gatherModel is a one-node graph, Gather(data, rows, axis=0), over a
// tensor of any rank with elements of dtype: the decoder picks the rows of
// values that stay in the session's device memory (encoder outputs and the
// key/value cache) without copying them through Go.
func gatherModel(dtype onnxrt.DType) ([]byte, error) {
	tensorType := func(elem int32, dims ...string) *onnxpb.TypeProto {
		t := &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(elem)}
		if dims != nil {
			t.Shape = &onnxpb.TensorShapeProto{}
			for _, d := range dims {
				t.Shape.Dim = append(t.Shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
			}
		}
		return &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: t}}
	}
	m := &onnxpb.ModelProto{
		IrVersion:    proto.Int64(8),
		ProducerName: proto.String("ortrain ortdecoder"),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}},
		Graph: &onnxpb.GraphProto{
			Name: proto.String("ortrain_gather_rows"),
			Node: []*onnxpb.NodeProto{{
				Name: proto.String("gather_rows"), OpType: proto.String("Gather"),
				Input: []string{gatherData, gatherRows}, Output: []string{gatherOut},
				Attribute: []*onnxpb.AttributeProto{{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(0)}},
			}},
			// data and the output have no shape: any rank
			Input: []*onnxpb.ValueInfoProto{
				{Name: proto.String(gatherData), Type: tensorType(int32(dtype))},
				{Name: proto.String(gatherRows), Type: tensorType(int32(onnxpb.TensorProto_INT64), "rows")},
			},
			Output: []*onnxpb.ValueInfoProto{{Name: proto.String(gatherOut), Type: tensorType(int32(dtype))}},
		},
	}
	return proto.Marshal(m)
}

// openGatherers opens a gather graph for each element type, on the device
// of opts.
func openGatherers(env *onnxrt.Env, dtypes []onnxrt.DType, opts onnxrt.SessionOptions) (map[onnxrt.DType]*onnxrt.Session, error) {
	out := map[onnxrt.DType]*onnxrt.Session{}
	for _, dt := range dtypes {
		if out[dt] != nil {
			continue
		}
		model, err := gatherModel(dt)
		if err == nil {
			out[dt], err = env.NewSessionFromBytes(model, fmt.Sprintf("row gather graph (%v)", dt), opts)
		}
		if err != nil {
			for _, s := range out {
				s.Close()
			}
			return nil, err
		}
	}
	return out, nil
}

// gatherValue picks rows of v along axis 0 inside ONNX Runtime; the result
// stays in the session's device memory.
func gatherValue(sessions map[onnxrt.DType]*onnxrt.Session, v *onnxrt.Value, rows []int) (*onnxrt.Value, error) {
	s := sessions[v.DType()]
	if s == nil {
		return nil, fmt.Errorf("reorder: no row gather graph for %v values (the decoder's outputs have other element types)", v.DType())
	}
	idx := make([]int64, len(rows))
	for i, r := range rows {
		idx[i] = int64(r)
	}
	rowsV, err := onnxrt.NewTensor([]int64{int64(len(idx))}, idx)
	if err != nil {
		return nil, err
	}
	defer rowsV.Close()
	b, err := s.NewBinding()
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if err := b.BindInput(gatherData, v); err != nil {
		return nil, err
	}
	if err := b.BindInput(gatherRows, rowsV); err != nil {
		return nil, err
	}
	if err := b.BindOutputToDevice(gatherOut); err != nil {
		return nil, err
	}
	if err := b.Run(); err != nil {
		return nil, err
	}
	outs, err := b.Outputs()
	if err != nil {
		return nil, err
	}
	return outs[gatherOut], nil
}
