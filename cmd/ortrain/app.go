package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// Version is the ortrain release; set with -ldflags "-X main.Version=..." for builds.
var Version = "0.1.0-dev"

// Exit codes, documented in the README and in `ortrain --help`.
const (
	exitOK          = 0
	exitError       = 1   // anything not covered below
	exitUsage       = 2   // bad flags or arguments
	exitData        = 3   // bad input data (files, fields, lines)
	exitRuntime     = 4   // ONNX Runtime library missing, too old, or provider unavailable
	exitInterrupted = 130 // SIGINT / SIGTERM
)

// usageError marks errors caused by how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// dataError marks errors caused by the user's input files.
type dataError struct{ err error }

func (e dataError) Error() string { return e.err.Error() }
func (e dataError) Unwrap() error { return e.err }

// exitKind gives a package's error kinds their exit codes: bad settings
// are usage errors, bad input data errors.
func exitKind(err, settings, input error) error {
	switch {
	case errors.Is(err, settings):
		return usageError{err}
	case errors.Is(err, input):
		return dataError{err}
	}
	return err
}

// optional is the flag's value, or nil when it was not given (the package
// then uses its default).
func optional[T any](c *cli.Context, name string, get func(string) T) *T {
	if !c.IsSet(name) {
		return nil
	}
	v := get(name)
	return &v
}

// newApp builds the CLI. Commands live one per file; each turns flags into a
// config and calls a package.
func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "ortrain",
		Usage:     "fine-tune and evaluate exported seq2seq models on ONNX Runtime",
		Version:   Version,
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "ort-lib", Usage: "path to libonnxruntime.so (else $ORTRAIN_ORT_LIB, else the cache filled by scripts/fetch-onnxruntime.sh)", EnvVars: nil},
		},
		Commands: []*cli.Command{
			newVersionCommand(),
			newTokenizeCommand(),
			newEnvCommand(),
			newInspectCommand(),
			newScoreCommand(),
			newPredictCommand(),
			newArtifactsCommand(),
			newExportORTCommand(),
			newTrainCommand(),
		},
		HideVersion:          false,
		EnableBashCompletion: true,
		CustomAppHelpTemplate: cli.AppHelpTemplate + `EXIT STATUS:
   0 success, 1 error, 2 usage error, 3 bad input data,
   4 ONNX Runtime missing or unusable, 130 interrupted
`,
		ExitErrHandler: func(*cli.Context, error) {}, // run() maps errors to exit codes
		OnUsageError:   func(_ *cli.Context, err error, _ bool) error { return usageError{err} },
	}
	app.CommandNotFound = func(c *cli.Context, name string) {
		notFound := usagef("unknown command %q (see ortrain --help)", name)
		app.Metadata["notFound"] = notFound
	}
	app.Metadata = map[string]any{}
	markUsageErrors(app.Commands)
	return app
}

// markUsageErrors makes flag-parsing errors of every command usage errors.
func markUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		if c.OnUsageError == nil {
			c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
		}
		markUsageErrors(c.Subcommands)
	}
}

// run executes the CLI and maps the outcome to an exit code; nothing below
// this function exits the process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	err := app.RunContext(ctx, args)
	if nf, ok := app.Metadata["notFound"].(error); ok && err == nil {
		err = nf
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "ortrain: %v\n", err)
	return exitCode(ctx, err)
}

func exitCode(ctx context.Context, err error) int {
	var ue usageError
	var de dataError
	switch {
	case errors.Is(err, context.Canceled) || ctx.Err() != nil:
		return exitInterrupted
	case errors.As(err, &ue), isMissingRequiredFlag(err), isUnknownDevice(err):
		return exitUsage
	case errors.As(err, &de):
		return exitData
	case isRuntimeError(err):
		return exitRuntime
	case isUnloadableModel(err):
		return exitData
	}
	return exitError
}

// isMissingRequiredFlag recognises urfave/cli's error for a missing
// Required flag; its type is unexported, its message is stable
// ("Required flag \"out\" not set", "Required flags \"a, b\" not set").
func isMissingRequiredFlag(err error) bool {
	return strings.HasPrefix(err.Error(), "Required flag")
}
