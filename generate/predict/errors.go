package predict

import (
	"errors"

	"github.com/ortrain/ortrain/internal/errkind"
)

var (
	// ErrInput marks errors in the user's files: sources, references,
	// tokenizer or generation config file.
	ErrInput = errors.New("predict: bad input data")
	// ErrSettings marks options that are missing, out of range, or do not
	// fit the model.
	ErrSettings = errors.New("predict: bad settings")
)

func inputError(err error) error { return errkind.Wrap(ErrInput, err) }

func inputErrorf(format string, args ...any) error {
	return errkind.Errorf(ErrInput, format, args...)
}

func settingsErrorf(format string, args ...any) error {
	return errkind.Errorf(ErrSettings, format, args...)
}
