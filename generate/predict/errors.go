package predict

import (
	"errors"
	"fmt"
)

var (
	// ErrInput marks errors in the user's files: sources, references,
	// tokenizer or generation config file.
	ErrInput = errors.New("predict: bad input data")
	// ErrSettings marks options that are missing, out of range, or do not
	// fit the model.
	ErrSettings = errors.New("predict: bad settings")
)

// kindError tags err with ErrInput or ErrSettings without changing its
// message, so callers can classify it (e.g. into exit codes).
type kindError struct{ kind, err error }

func (e kindError) Error() string        { return e.err.Error() }
func (e kindError) Unwrap() error        { return e.err }
func (e kindError) Is(target error) bool { return target == e.kind }

func inputError(err error) error { return kindError{ErrInput, err} }

func inputErrorf(format string, args ...any) error {
	return kindError{ErrInput, fmt.Errorf(format, args...)}
}

func settingsErrorf(format string, args ...any) error {
	return kindError{ErrSettings, fmt.Errorf(format, args...)}
}
