package ortrain

import "github.com/ortrain/ortrain/internal/fault"

// The kinds of failure ortrain tells apart. Every error of the ortrain
// packages that is the user's to fix matches one of them with errors.Is
// (the command's exit code comes from them alone); others are failures of
// ortrain or of the system.
var (
	// ErrInput: a file the user gave (data, model, tokenizer, checkpoint,
	// artifact folder, configuration file) is missing, unreadable or
	// malformed.
	ErrInput = fault.Input
	// ErrSettings: an argument, flag or option is invalid or contradicts
	// another (ArgumentError is one).
	ErrSettings = fault.Settings
	// ErrRuntime: the ONNX Runtime library or an execution provider cannot
	// be used.
	ErrRuntime = fault.Runtime
	// ErrInterrupted is context.Canceled: training or prediction was
	// stopped (SIGINT, SIGTERM, a cancelled context).
	ErrInterrupted = fault.Interrupted
)
