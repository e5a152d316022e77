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
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/wxgate/wxgate/configs"
	"github.com/wxgate/wxgate/internal/config"
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

// listEnvironment adds the WXGATE_* variables, with their defaults and the
// explanation of configs/wxgate.example.yaml, to fs's --help.
func listEnvironment(fs *flag.FlagSet) {
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		w := fs.Output()
		fmt.Fprintf(w, "\nEnvironment (the same keys, lower-case without WXGATE_, in the --config file):\n")
		for _, s := range config.Describe(configs.Example) {
			def := "required"
			if !s.Required {
				def = "default " + strconv.Quote(s.Default)
			}
			fmt.Fprintf(w, "  %s (%s)\n", s.Env, def)
			if s.Doc != "" {
				fmt.Fprintf(w, "    \t%s\n", s.Doc)
			}
		}
	}
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
	info, _ := debug.ReadBuildInfo()
	_, err := fmt.Fprintln(stdio.Stdout, versionLine(Version, info))
	return err
}

// versionLine is "wxgate VERSION (REVISION, TIME, GOVERSION)": the version set
// by `make build`, else the module version the go command stamped, and the
// VCS revision from the build info, so a plain `go build` or `go install`
// binary still says what it was built from.
func versionLine(v string, info *debug.BuildInfo) string {
	if info == nil {
		return "wxgate " + v
	}
	if v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	var rev, at, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	parts := []string{}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		parts = append(parts, rev+modified)
	}
	if at != "" {
		parts = append(parts, at)
	}
	parts = append(parts, info.GoVersion)
	return "wxgate " + v + " (" + strings.Join(parts, ", ") + ")"
}
