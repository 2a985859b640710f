// Package fixturecheck holds only tests: they check the committed model
// fixtures in testdata/models (and the ONNX Runtime training artifacts in
// testdata/ort-artifacts) against the PyTorch values stored beside them.
// Every ONNX file of every fixture is loaded in ONNX Runtime and its outputs
// on the fixed batch are compared with PyTorch's
// (scripts/fixtures/make_tiny_models.py made both).
package fixturecheck
