// Package app is wxgate's composition root: it parses the command line,
// loads the configuration, opens the store, wires every service by
// constructor and runs the servers until the context ends.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Version is the build's version, set with -ldflags "-X github.com/wxgate/wxgate/internal/app.Version=…".
var Version = "dev"

// Env is the process environment as run reads it (os.Getenv in main, a map
// in tests).
type Env func(string) string

// IO bundles the process streams.
type IO struct {
	Stdout io.Writer
	Stderr io.Writer
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, getenv Env, stdio IO) error
}

func commands() []command {
	return []command{
		{"serve", "run the gateway (applies pending migrations first)", runServe},
		{"migrate", "apply pending migrations and exit", runMigrate},
		{"sim", "run the WeChat simulator", runSim},
		{"demo", "run gateway + simulator on the embedded store, with a demo tenant and accounts", runDemo},
		{"bench", "measure the gateway against the simulator (and other proxies) on loopback and print the figures", runBench},
		{"healthcheck", "probe a URL (container health checks)", runHealthcheck},
		{"version", "print the version", runVersion},
	}
}

// ErrUsage marks a command-line mistake; main exits 2 for it.
var ErrUsage = errors.New("usage")

// Run is the whole program: args are the command line without the program
// name. It returns when the command finishes, or after a graceful shutdown
// once ctx is cancelled or the process receives SIGINT or SIGTERM.
func Run(ctx context.Context, args []string, getenv Env, stdio IO) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdio.Stdout)
		if len(args) == 0 {
			return fmt.Errorf("%w: no command given", ErrUsage)
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], getenv, stdio)
		}
	}
	usage(stdio.Stderr)
	return fmt.Errorf("%w: unknown command %q", ErrUsage, args[0])
}

func usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("wxgate: a multi-tenant gateway for WeChat third-party platforms\n\nUsage: wxgate <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-12s %s\n", c.name, c.summary)
	}
	b.WriteString("\nRun 'wxgate <command> --help' for the flags of a command. Configuration comes from WXGATE_* environment variables\n(and an optional --config FILE); see configs/wxgate.example.yaml.\n")
	_, _ = io.WriteString(w, b.String())
}

// newFlags makes a FlagSet whose --help prints to stdout and whose errors
// become ErrUsage.
func newFlags(name, summary string, stdio IO) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdio.Stdout)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: wxgate %s [flags]\n\n%s\n\nFlags:\n", name, strings.TrimSpace(summary))
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, answering nil and done=true for --help.
func parse(fs *flag.FlagSet, args []string) (done bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil // flag printed the usage
		}
		return true, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return true, fmt.Errorf("%w: unexpected arguments %q", ErrUsage, fs.Args())
	}
	return false, nil
}

func runVersion(_ context.Context, args []string, _ Env, stdio IO) error {
	fs := newFlags("version", "Print the version.", stdio)
	if done, err := parse(fs, args); done {
		return err
	}
	_, err := fmt.Fprintf(stdio.Stdout, "wxgate %s\n", Version)
	return err
}
