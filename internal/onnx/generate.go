package onnx

// opsets_gen.go comes from the operator schemas of the onnx Python package
// (1.23.2, on PATH as python3); onnxpb/onnx.pb.go from onnx.proto (see
// onnxpb/gen.go).
//go:generate python3 ../../scripts/gen_onnx_opsets.py
