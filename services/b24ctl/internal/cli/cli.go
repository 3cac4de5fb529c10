// Package cli is b24ctl, the b24hub operator CLI: portals, subscriptions,
// live events and the ledger, replay, topology, and a load generator.
//
// Every command prints a human table by default and one JSON document with
// --output json, answers --help with an example, and exits with a code that
// means something (see the Exit* constants). Errors name the fix.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
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
}

// exitError carries an exit code with a message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func fail(code int, format string, a ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, a...)}
}

func usageErr(format string, a ...any) error { return fail(ExitUsage, format, a...) }

// command is one leaf command.
type command struct {
	path    string // "portals list"
	summary string
	usage   string // arguments after the path
	example string
	flags   func(fs *flag.FlagSet, o *opts)
	run     func(ctx context.Context, c *call) error
}

// opts are the flags every command understands.
type opts struct {
	output     string
	natsURL    string
	monitorURL string
	token      string
	timeout    time.Duration
}

// call is one command invocation.
type call struct {
	env  Env
	o    opts
	args []string
	fs   *flag.FlagSet
}

func (c *call) out() io.Writer { return c.env.Stdout }
func (c *call) json() bool     { return c.o.output == "json" }

var commands []*command

func register(c *command) { commands = append(commands, c) }

// Run executes b24ctl with args (without the program name) and returns the
// exit code.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printOverview(env.Stdout)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	cmd, rest := find(args)
	if cmd == nil {
		fmt.Fprintf(env.Stderr, "b24ctl: unknown command %q\n\n", strings.Join(args[:min(len(args), 2)], " "))
		printOverview(env.Stderr)
		return ExitUsage
	}
	c := &call{env: env}
	fs := flag.NewFlagSet("b24ctl "+cmd.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.o.output, "output", "text", "output format: text or json")
	fs.StringVar(&c.o.natsURL, "nats-url", or(env.Getenv("B24HUB_NATS_URL"), "nats://127.0.0.1:4222"), "NATS URL (env B24HUB_NATS_URL)")
	fs.StringVar(&c.o.monitorURL, "monitor-url", or(env.Getenv("B24HUB_MONITOR_URL"), "http://127.0.0.1:8081"), "monitor base URL (env B24HUB_MONITOR_URL)")
	fs.StringVar(&c.o.token, "token", env.Getenv("B24HUB_MONITOR_TOKEN"), "monitor API token (env B24HUB_MONITOR_TOKEN)")
	fs.DurationVar(&c.o.timeout, "timeout", 30*time.Second, "overall time limit of the command")
	help := fs.Bool("help", false, "show help")
	fs.BoolVar(help, "h", false, "show help")
	if cmd.flags != nil {
		cmd.flags(fs, &c.o)
	}
	c.fs = fs
	pos, err := parseInterleaved(fs, rest)
	if err != nil {
		fmt.Fprintf(env.Stderr, "b24ctl %s: %v\n\n", cmd.path, err)
		printUsage(env.Stderr, cmd, fs)
		return ExitUsage
	}
	if *help {
		printUsage(env.Stdout, cmd, fs)
		return ExitOK
	}
	if c.o.output != "text" && c.o.output != "json" {
		fmt.Fprintf(env.Stderr, "b24ctl %s: --output must be text or json\n", cmd.path)
		return ExitUsage
	}
	c.args = pos
	ctx, cancel := context.WithTimeout(ctx, c.o.timeout)
	defer cancel()
	err = cmd.run(ctx, c)
	if err == nil {
		return ExitOK
	}
	code := ExitError
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if code == ExitFindings {
		return code // the output already says what was found
	}
	if c.json() {
		writeJSON(env.Stdout, map[string]any{"error": err.Error(), "exit_code": code})
	}
	fmt.Fprintf(env.Stderr, "b24ctl %s: %v\n", cmd.path, err)
	if code == ExitUsage {
		fmt.Fprintf(env.Stderr, "run `b24ctl %s --help` for usage\n", cmd.path)
	}
	return code
}

// find picks the longest command path that prefixes args.
func find(args []string) (*command, []string) {
	var best *command
	n := 0
	for _, c := range commands {
		p := strings.Fields(c.path)
		if len(p) <= len(args) && slices.Equal(p, args[:len(p)]) && len(p) > n {
			best, n = c, len(p)
		}
	}
	return best, args[n:]
}

// parseInterleaved lets flags and positional arguments mix.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func printOverview(w io.Writer) {
	fmt.Fprintln(w, "b24ctl — operate b24hub\n\nUsage: b24ctl <command> [flags]\n\nCommands:")
	cs := slices.Clone(commands)
	slices.SortFunc(cs, func(a, b *command) int { return strings.Compare(a.path, b.path) })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-22s %s\n", c.path, c.summary)
	}
	fmt.Fprintln(w, "\nEvery command takes --help, --output json and --timeout.")
	fmt.Fprintln(w, "Exit codes: 0 ok, 1 error, 2 usage, 3 dependency unreachable, 4 findings (drift, failed requests), 5 token refused.")
}

func printUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "b24ctl %s — %s\n\nUsage: b24ctl %s [flags] %s\n\nExample:\n  %s\n\nFlags:\n", c.path, c.summary, c.path, c.usage, c.example)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "h" {
			return
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && !strings.Contains(f.Name, "token") {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "  --%-16s %s%s\n", f.Name, f.Usage, def)
	})
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
