// Package errkind tags errors with a kind, a sentinel error such as a
// package's ErrInput, without changing their message, so that callers can
// classify them with errors.Is (the command line turns kinds into exit
// codes).
package errkind

import "fmt"

type tagged struct{ kind, err error }

func (e tagged) Error() string        { return e.err.Error() }
func (e tagged) Unwrap() error        { return e.err }
func (e tagged) Is(target error) bool { return target == e.kind }

// Wrap tags err with kind; nil stays nil.
func Wrap(kind, err error) error {
	if err == nil {
		return nil
	}
	return tagged{kind, err}
}

// Errorf is Wrap(kind, fmt.Errorf(format, args...)).
func Errorf(kind error, format string, args ...any) error {
	return tagged{kind, fmt.Errorf(format, args...)}
}
