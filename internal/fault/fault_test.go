package fault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestMarkKeepsMessageAndCause(t *testing.T) {
	err := Mark(Input, fmt.Errorf("data.jsonl:3: %w", io.ErrUnexpectedEOF))
	if err.Error() != "data.jsonl:3: unexpected EOF" {
		t.Fatalf("message %q", err)
	}
	if !errors.Is(err, Input) || !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, Settings) {
		t.Fatalf("kinds of %v wrong", err)
	}
	wrapped := fmt.Errorf("loading: %w", err)
	if !errors.Is(wrapped, Input) {
		t.Fatal("kind lost through wrapping")
	}
	if Mark(Input, nil) != nil {
		t.Fatal("Mark(nil) is not nil")
	}
	if Mark(Input, err) != err {
		t.Fatal("marking twice nests")
	}
}

func TestSentinelOfAKind(t *testing.T) {
	tooOld := New(Runtime, "ONNX Runtime library too old")
	err := fmt.Errorf("%w: lib.so is 1.10", tooOld)
	if !errors.Is(err, tooOld) || !errors.Is(err, Runtime) || err.Error() != "ONNX Runtime library too old: lib.so is 1.10" {
		t.Fatalf("%v", err)
	}
	if !errors.Is(Settingsf("--x %d", 1), Settings) || !errors.Is(Inputf("f"), Input) || !errors.Is(Runtimef("r"), Runtime) {
		t.Fatal("formatted errors lack their kind")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if !errors.Is(fmt.Errorf("step 3: %w", ctx.Err()), Interrupted) {
		t.Fatal("a cancelled context is not Interrupted")
	}
}
