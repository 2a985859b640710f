package errkind

import (
	"errors"
	"io/fs"
	"testing"
)

func TestWrapKeepsMessageAndChain(t *testing.T) {
	kind, other := errors.New("kind"), errors.New("other")
	err := Wrap(kind, fs.ErrNotExist)
	if err.Error() != fs.ErrNotExist.Error() || !errors.Is(err, kind) || !errors.Is(err, fs.ErrNotExist) || errors.Is(err, other) {
		t.Errorf("Wrap: %v", err)
	}
	err = Errorf(kind, "reading %s: %w", "x", fs.ErrNotExist)
	if err.Error() != "reading x: file does not exist" || !errors.Is(err, kind) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Errorf: %v", err)
	}
	if Wrap(kind, nil) != nil {
		t.Error("Wrap(kind, nil) is not nil")
	}
}
