// Command ortrain fine-tunes and evaluates exported seq2seq models on ONNX Runtime.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// interruptGrace is how long the work may take to stop after SIGINT or
// SIGTERM before the process exits anyway: every loop checks for the
// signal, but a call in progress (an ONNX Runtime step or session
// creation, a blocking read) cannot be interrupted. What ortrain writes
// stays consistent when it is cut short (checkpoints are renamed into place
// whole; predict's output is written line by line).
const interruptGrace = 5 * time.Second

func main() {
	os.Exit(runInterruptible(os.Args, os.Stdin, os.Stdout, os.Stderr, interruptGrace))
}

// runInterruptible runs the command; after SIGINT or SIGTERM it returns
// the command's own exit code if the command stops within grace, else 130,
// and 130 at once on a second signal.
func runInterruptible(args []string, stdin io.Reader, stdout, stderr io.Writer, grace time.Duration) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, stdin, stdout, stderr) }()
	select {
	case code := <-done:
		return code
	case <-sigs:
		cancel()
	}
	select {
	case code := <-done:
		return code
	case <-sigs:
	case <-time.After(grace):
	}
	fmt.Fprintf(stderr, "ortrain: interrupted; the work did not stop within %v, exiting anyway (files ortrain writes stay consistent)\n", grace)
	return exitInterrupted
}
