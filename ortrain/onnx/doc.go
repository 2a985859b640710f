// Package onnx reads, writes, builds and analyses ONNX models in pure Go, on
// the protobuf types of package onnxpb (generated from ONNX 1.23.2's
// onnx.proto).
//
// # Files
//
// Load reads a model and the external data files its tensors refer to
// (locations relative to the model's folder, with offset and length as the
// ONNX spec defines them); errors name the file and the tensor. With
// LoadOptions.KeepExternal the weights stay on disk, for inspecting huge
// models; ResolveExternalData reads them later. Save writes atomically
// (temporary file, then rename) and moves tensor data to one external file
// when asked or when the model would pass protobuf's 2 GiB limit. Models
// written either way load in onnx Python and ONNX Runtime, and models that
// onnx Python saved with external data load here.
//
// # Tensors
//
// NewTensor builds a TensorProto from a Go slice (float32, float64, int64,
// int32, bool, ...; NewFloat16Tensor / NewBFloat16Tensor for half-precision
// bit patterns); Float32s, Int64s, Bools, HalfBits, ToFloat64s, ToInt64s read
// values back from raw_data or the typed fields. DTypeSize, NumElements and
// ByteSize give sizes.
//
// # Building and editing graphs
//
// GraphBuilder appends nodes (Op for one output, OpN for several),
// inputs and outputs with symbolic dims (AddInput(name, Float32,
// Sym("batch"), D(512))), initializers and constants (Const*, as
// initializers or Constant nodes per GraphBuilder.Consts), naming every new
// value and node so that it collides with nothing in the graph. Attributes
// come from AttrInt, AttrInts, AttrFloat, AttrFloats, AttrString,
// AttrTensor, AttrGraph. The graphs ortrain generates use standard-domain
// operators only; com.microsoft operators are understood when reading.
//
// TopoSort orders nodes (a cycle is an error naming a node on it), Extract
// cuts the subgraph between given inputs and outputs, Producers and
// Consumers index values, RenameValue and RemoveDeadNodes edit, Opset /
// SetOpset / Opsets handle operator set imports.
//
// # Shape and type inference
//
// InferShapes gives the element type, rank and dimensions of every value of
// a graph. Static sizes are computed wherever they are determinable;
// symbolic sizes stay symbolic: dims derived from symbols get canonical
// expression names ("past_seq + seq", "batch*seq", "seq - 1"), computed
// through broadcasting, reshapes, concatenation, slices and folded shape
// arithmetic (Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains), so
// equal names always mean equal sizes and Dim.Eval gives the size for given
// input sizes. What cannot be known gets a fresh symbol "unk__N". On the
// tiny T5, BART and Marian exports in testdata (TorchScript and dynamo
// exporters, opsets 14-18, with and without a KV cache) every dimension of
// every value is static or an expression of the input sizes, checked
// against ONNX Runtime's actual shapes. A dimension is statically 1
// (TypeInfo.IsOne) only when it is 1 for every input size.
//
// # Inspection
//
// Summarize describes a model (inputs and outputs with shapes, opsets,
// operator histogram, parameter count and bytes, external data files) for
// `ortrain inspect`; it works on models loaded with KeepExternal.
package onnx
