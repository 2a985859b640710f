package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnxrt"
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
		OnUsageError:   func(_ *cli.Context, err error, _ bool) error { return fault.Mark(fault.Settings, err) },
	}
	app.CommandNotFound = func(c *cli.Context, name string) {
		notFound := fault.Settingsf("unknown command %q (see ortrain --help)", name)
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
			c.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return fault.Mark(fault.Settings, err) }
		}
		markUsageErrors(c.Subcommands)
	}
}

// run executes the CLI and maps the outcome to an exit code; nothing below
// this function exits the process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runApp(ctx, newApp(stdin, stdout, stderr), bareResume(args), stderr)
}

// bareResume gives a --resume_from_checkpoint without a value the value
// "true" (the last checkpoint in output_dir), as HF's example scripts
// read the bare flag; otherwise the flag would take the next flag as its
// path.
func bareResume(args []string) []string {
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--":
			return args
		case "--resume_from_checkpoint", "--resume-from-checkpoint":
			if i+1 == len(args) || strings.HasPrefix(args[i+1], "-") {
				args = slices.Insert(slices.Clone(args), i+1, "true")
			}
		}
	}
	return args
}

// runApp runs app and maps the outcome to an exit code.
func runApp(ctx context.Context, app *cli.App, args []string, stderr io.Writer) int {
	err := runRecovered(ctx, app, args)
	var bug *crash
	if errors.As(err, &bug) {
		fmt.Fprintf(stderr, "ortrain: internal error: %v\nThis is a bug in ortrain, not in your input: please report it with the command line and the trace below.\n%s", bug.value, bug.stack)
		return exitError
	}
	if nf, ok := app.Metadata["notFound"].(error); ok && err == nil {
		err = nf
	}
	if err == nil {
		return exitOK
	}
	if ctx.Err() != nil {
		// a signal stopped the work, whatever error that caused; say so
		// rather than "context canceled"
		fmt.Fprintf(stderr, "ortrain: %s\n", interruptedMessage(err))
		return exitCode(fault.Mark(fault.Interrupted, err))
	}
	fmt.Fprintf(stderr, "ortrain: %v\n", err)
	return exitCode(err)
}

// crash is a panic recovered at the command boundary: never a usage
// error (Go's own exit status for a panic is 2, the README's code for one).
type crash struct {
	value any
	stack []byte
}

func (c *crash) Error() string { return fmt.Sprintf("internal error: %v", c.value) }

// runRecovered runs the app, turning a panic into a *crash.
func runRecovered(ctx context.Context, app *cli.App, args []string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &crash{value: r, stack: debug.Stack()}
		}
	}()
	return app.RunContext(ctx, args)
}

// exitCode maps the error kinds to the documented exit codes; a settings
// error wins over an input error it wraps, as the user's call is what to
// fix first.
func exitCode(err error) int {
	switch {
	case errors.Is(err, fault.Interrupted):
		return exitInterrupted
	case errors.Is(err, fault.Settings):
		return exitUsage
	case errors.Is(err, fault.Input):
		return exitData
	case errors.Is(err, fault.Runtime):
		return exitRuntime
	}
	return exitError
}

// interruptedMessage words the error a signal caused: the work's own
// message when it has one ("interrupted after 40 of 100 lines …"), else
// where it was, without Go's "context canceled".
func interruptedMessage(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "interrupted") {
		return msg
	}
	where := strings.TrimSuffix(strings.TrimSuffix(msg, context.Canceled.Error()), ": ")
	if where == "" {
		return "interrupted"
	}
	return "interrupted (" + where + ")"
}

// requireFlags is a command's Before: it reports missing flags as
// urfave/cli's Required does (the command's help, then the same message),
// but as a bad setting.
func requireFlags(names ...string) cli.BeforeFunc {
	return func(c *cli.Context) error {
		var missing []string
		for _, n := range names {
			if !c.IsSet(n) {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		cli.HelpPrinter(c.App.Writer, cli.CommandHelpTemplate, c.Command)
		if len(missing) == 1 {
			return fault.Settingsf("Required flag %q not set", missing[0])
		}
		return fault.Settingsf("Required flags %q not set", strings.Join(missing, ", "))
	}
}

// openRuntime loads ONNX Runtime as the global --ort-lib flag says (else
// $ORTRAIN_ORT_LIB, else the user cache).
func openRuntime(c *cli.Context) (*onnxrt.Env, error) {
	return onnxrt.Open(c.String("ort-lib"))
}
