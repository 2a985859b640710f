// Package onnx reads, writes, builds and analyses ONNX models in pure Go,
// on the protobuf types of package onnxpb.
//
// Files: Load / LoadWith read a model and the external data files its
// tensors refer to (LoadOptions.KeepExternal leaves them unread, for
// inspecting huge models; ResolveExternalData reads them later). Save
// writes atomically, moving tensor data to an external file when asked or
// when the model would pass the 2 GiB protobuf limit.
//
// Tensors: NewTensor builds a TensorProto from a Go slice; Float32s, Int64s,
// ToFloat64s, ... read one back from raw_data or the typed fields.
//
// Building: GraphBuilder appends nodes (Op, OpN), inputs, outputs,
// initializers and constants with names that never collide with existing
// ones. Graph utilities: TopoSort, Extract (the subgraph between given
// inputs and outputs), Producers, Consumers, RenameValue, RemoveDeadNodes,
// Opset / SetOpset.
//
// Analysis: InferShapes gives the element type, rank and dimensions of
// every value (symbolic dimensions stay symbolic); Summarize describes a
// model for `ortrain inspect`.
//
// Graphs that ortrain generates use only standard-domain operators, so any
// inference build of ONNX Runtime runs them; com.microsoft operators are
// understood when reading exported models.
package onnx
