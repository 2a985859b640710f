package onnx

// opsets_gen.go comes from the operator schemas of the onnx Python package
// (1.23.2); onnxpb/onnx.pb.go from onnx.proto (see onnxpb/gen.go).
//go:generate sh -c "cd ../.. && ${PYTHON:-python3} scripts/gen_onnx_opsets.py && gofmt -w internal/onnx/opsets_gen.go"
