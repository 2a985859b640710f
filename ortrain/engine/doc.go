// Package engine is ortrain's training engine: it runs the graphs of an
// artifact folder (internal/artifacts) on ONNX Runtime and implements the
// trainer's interfaces over them: Engine (forward, backward and optimizer
// steps with parameters, gradient sums and optimizer state kept in device
// memory), Generator (predict_with_generate through generate and
// generate/ortdecoder with the engine's current parameters) and Data
// (tokenized datasets batched as HF's DataCollatorForSeq2Seq does).
// Prepare wires them into an ortrain.Trainer from a model folder and data
// files; DemoConfig does so for the embedded demo.
package engine
