// Package onnxpb holds the protobuf types of the standard ONNX model format,
// generated from onnx.proto (ONNX 1.23.2, IR version 14).
//
// Regenerate with (protoc 3.21+, protoc-gen-go v1.36.12):
//
//	go generate ./internal/onnx/onnxpb
package onnxpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/ortrain/ortrain/internal/onnx/onnxpb onnx.proto
