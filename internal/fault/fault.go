// Package fault names the few kinds of failure that ortrain tells apart at
// its boundary: the user's input files, the user's settings, an unusable
// ONNX Runtime, and an interruption. Packages mark the errors they return
// with a kind (the message stays theirs); the command picks its exit code
// with errors.Is on the kinds alone. Package ortrain re-exports the kinds
// for library users.
package fault

import (
	"context"
	"errors"
	"fmt"
)

// The kinds.
var (
	// Input: a file the user gave (data, model, tokenizer, checkpoint,
	// artifact folder) is missing, unreadable or malformed.
	Input = errors.New("bad input")
	// Settings: a flag, option or argument is invalid or contradicts
	// another.
	Settings = errors.New("bad settings")
	// Runtime: the ONNX Runtime library or an execution provider cannot be
	// used.
	Runtime = errors.New("ONNX Runtime unusable")
	// Interrupted is context.Canceled: the work was stopped (SIGINT,
	// SIGTERM, a cancelled context).
	Interrupted = context.Canceled
)

// marked is an error tagged with a kind; it reads as the error alone.
type marked struct {
	err, kind error
}

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.err, m.kind} }

// Mark tags err with kind (nil stays nil), keeping its message.
func Mark(kind, err error) error {
	if err == nil || errors.Is(err, kind) {
		return err
	}
	return &marked{err: err, kind: kind}
}

// New is errors.New(msg) tagged with kind: a sentinel of that kind.
func New(kind error, msg string) error { return &marked{err: errors.New(msg), kind: kind} }

// Inputf formats an error of kind Input.
func Inputf(format string, a ...any) error { return Mark(Input, fmt.Errorf(format, a...)) }

// Settingsf formats an error of kind Settings.
func Settingsf(format string, a ...any) error { return Mark(Settings, fmt.Errorf(format, a...)) }

// Runtimef formats an error of kind Runtime.
func Runtimef(format string, a ...any) error { return Mark(Runtime, fmt.Errorf(format, a...)) }
