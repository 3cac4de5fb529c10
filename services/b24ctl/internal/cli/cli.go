// Package cli is b24ctl, the b24hub operator CLI: portals, subscriptions,
// live events and the ledger, replay, topology, and a load generator.
//
// It follows the conventions of kubectl and the nats CLI: commands are
// nouns then verbs (`b24ctl events tail`), listing and show commands take
// `-o json|yaml|table`, each command lists only the flags it uses (NATS
// flags on NATS commands, monitor flags on monitor commands), `b24ctl
// completion bash|zsh|fish` prints shell completion and `b24ctl version`
// the build. Exit codes mean something (see the Exit* constants) and errors
// name the fix. Follow-mode commands run until interrupted; every command
// stops on the first Ctrl-C (a second one kills the process).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes. Scripts may rely on them.
const (
	// ExitOK: the command did what was asked.
	ExitOK = 0
	// ExitError: the command failed (a remote error, an invalid file).
	ExitError = 1
	// ExitUsage: wrong command, flag or argument.
	ExitUsage = 2
	// ExitUnavailable: a dependency (NATS, the monitor, the ingress) could
	// not be reached.
	ExitUnavailable = 3
	// ExitFindings: the command worked and found something to act on:
	// subscription drift (diff), failed requests (simulate), failed replays.
	ExitFindings = 4
	// ExitAuth: the monitor refused the token.
	ExitAuth = 5
	// ExitInterrupted: Ctrl-C (or SIGTERM) stopped a command before it had
	// done its work (128 + SIGINT, as shells report it). A follow-mode
	// command (events tail) ends with ExitOK instead: being interrupted is
	// how it is meant to stop.
	ExitInterrupted = 130
)

// Env is what a command runs with; tests fill it by hand.
type Env struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Progress forces the progress bar on (it is shown by default only
	// when stderr is a terminal).
	Progress bool
	// ReadSecret prints prompt on stderr and reads one line from the
	// terminal without echo. Nil when there is no terminal to ask: a
	// secret is then never prompted for.
	ReadSecret func(prompt string) (string, error)
	// Version, when set, replaces the version libs/buildinfo reads from
	// the binary (tests).
	Version string
}

// exitError carries an exit code with a message.
type exitError struct {
	code int
	err  error
	// shown is true when the command already printed its result (a
	// report that says what went wrong), so no error document follows.
	shown bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func fail(code int, format string, a ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, a...)}
}

// failShown is fail for a command whose printed result already says
// what went wrong.
func failShown(code int, format string, a ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, a...), shown: true}
}

func usageErr(format string, a ...any) error { return fail(ExitUsage, format, a...) }

// app is one b24ctl invocation.
type app struct {
	env Env
}

// Run executes b24ctl with args (without the program name) and returns the
// exit code. Cancelling ctx (the first Ctrl-C) stops the command.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	a := &app{env: env}
	root := a.root()
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	return a.report(ctx, cmd, err)
}

// report prints err and returns its exit code. Errors that cobra itself
// returns (unknown command or flag, missing argument) are usage errors;
// every error of a command's own work is an *exitError.
func (a *app) report(ctx context.Context, cmd *cobra.Command, err error) int {
	code := ExitUsage
	shown := false
	var ee *exitError
	if errors.As(err, &ee) {
		code, shown = ee.code, ee.shown
	}
	if ctx.Err() != nil && code != ExitUsage && code != ExitInterrupted {
		// A request cut short by Ctrl-C fails with whatever the transport
		// says; what happened is the interrupt.
		code, err = ExitInterrupted, errors.New("interrupted")
	}
	if code == ExitFindings {
		return code // the output already says what was found
	}
	if f := cmd.Flags().Lookup("output"); f != nil && !shown && f.Value.String() != formatTable {
		_ = printerFor(f.Value.String(), a.env.Stdout).print(map[string]any{"error": err.Error(), "exit_code": code}, nil)
	}
	fmt.Fprintf(a.env.Stderr, "%s: %v\n", cmd.CommandPath(), err)
	if code == ExitUsage {
		fmt.Fprintf(a.env.Stderr, "run `%s --help` for usage\n", cmd.CommandPath())
	}
	return code
}

// root builds the command tree.
func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "b24ctl",
		Short: "operate b24hub: portals, subscriptions, events, replay, topology, load",
		Long: `b24ctl operates b24hub: portals, subscriptions, live events and the delivery
ledger, replay, the NATS topology, and a load generator.

Listing and show commands take -o json|yaml|table. Exit codes: 0 ok, 1 error,
2 usage, 3 dependency unreachable, 4 findings (drift, failed requests, firing
alerts), 5 token refused, 130 interrupted.`,
		Version:       a.version().Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		// Validate -o before any work, for every command that has it.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if f := cmd.Flags().Lookup("output"); f != nil {
				if _, ok := formats[f.Value.String()]; !ok {
					return usageErr("-o/--output %q: want json, yaml or table", f.Value.String())
				}
			}
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr("%v", err) })
	root.SetVersionTemplate("{{.Name}} {{.Version}}\n")
	root.AddCommand(
		a.portalsCmd(),
		a.subscriptionsCmd(),
		a.destinationsCmd(),
		a.eventsCmd(),
		a.replayCmd(),
		a.auditCmd(),
		a.topologyCmd(),
		a.simulateCmd(),
		a.versionCmd(),
	)
	return root
}

// group is a command that only holds subcommands. Unlike cobra's default
// it rejects an unknown subcommand instead of printing help with exit 0.
func group(use, short string, children ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
	c.AddCommand(children...)
	return c
}

// action adapts a command's work to cobra: the context is the
// invocation's, and an error without an exit code is a failure (exit 1),
// never mistaken for a usage error.
func action(fn func(ctx context.Context, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd.Context(), cmd, args)
		var ee *exitError
		if err != nil && !errors.As(err, &ee) {
			err = &exitError{code: ExitError, err: err}
		}
		return err
	}
}

// exactArgs wants n positional arguments, named what in the error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErr("want %s (got %d arguments)", what, len(args))
		}
		return nil
	}
}

// noArgs rejects positional arguments with a usage error.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr("unexpected argument %q", args[0])
	}
	return nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
