package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// command is one subcommand of the binary.
type command struct {
	name    string
	summary string
	// run parses args with the flag set it builds and runs the command.
	run func(ctx context.Context, e *env, args []string) error
}

// env is what a command may use of the outside world: injected so tests run commands in-process.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

// errUsage marks bad command-line input (exit status 2).
var errUsage = errors.New("usage")

func commands() []command {
	return []command{
		{name: "dev", summary: "run the whole system locally on an embedded PostgreSQL", run: runDev},
		{name: "serve", summary: "serve the API against a migrated database", run: runServe},
		{name: "migrate", summary: "apply the schema migrations to a database", run: runMigrate},
		{name: "sync", summary: "track symbols through sync-user-symbols, as the app does", run: runSync},
		{name: "status", summary: "show the backfill's progress per symbol and timeframe; --watch follows it live", run: runStatus},
		{name: "verify", summary: "check that the stored bars are complete per session; exits 1 on holes; --repair queues them", run: runVerify},
		{name: "token", summary: "print a signed development token (anon, authenticated, service_role)", run: runToken},
		{name: "bench", summary: "measure the system under load (scenarios: sync, cdc, backfill, completeness, provider)", run: runBench},
		{name: "fake-alpaca", summary: "serve a local imitation of Alpaca's bars API with the plan's rate limit", run: runFakeAlpaca},
		{name: "version", summary: "print the version", run: runVersion},
	}
}

// run is the whole program: it returns the process exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "backfill %s: %s\n", c.name, oneLine(err))
			return 2
		default:
			fmt.Fprintf(stderr, "backfill %s: %s\n", c.name, oneLine(err))
			return 1
		}
	}
	fmt.Fprintf(stderr, "backfill: unknown command %q (run backfill --help)\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: backfill <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun backfill <command> --help for a command's flags. Every flag can also be set by the environment variable named in its help.")
}

// oneLine keeps an error on one line: a wrapped server error may carry newlines.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// flags is a flag set whose every flag has an environment-variable equivalent. A flag given on
// the command line wins over the environment, which wins over the default.
type flags struct {
	fs     *flag.FlagSet
	e      *env
	envErr []error
}

func newFlags(e *env, name, synopsis, about string) *flags {
	fs := flag.NewFlagSet("backfill "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	f := &flags{fs: fs, e: e}
	fs.Usage = func() {
		// Help goes to stdout so it can be paged; parse errors stay on stderr.
		fmt.Fprintf(e.stdout, "Usage: backfill %s %s\n\n%s\n\nFlags:\n", name, synopsis, about)
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		fs.SetOutput(e.stderr)
	}
	return f
}

// envDefault returns the value of environment variable name parsed by parse, or def when it is
// unset. An unparsable value is remembered and reported by Parse.
func envDefault[T any](f *flags, name string, def T, parse func(string) (T, error), want string) T {
	v := f.e.getenv(name)
	if v == "" {
		return def
	}
	parsed, err := parse(v)
	if err != nil {
		f.envErr = append(f.envErr, fmt.Errorf("%w: %s=%q is not %s", errUsage, name, v, want))
		return def
	}
	return parsed
}

func (f *flags) String(p *string, name, envName, def, help string) {
	def = envDefault(f, envName, def, func(s string) (string, error) { return s, nil }, "")
	f.fs.StringVar(p, name, def, help+" (env "+envName+")")
}

func (f *flags) Int(p *int, name, envName string, def int, help string) {
	def = envDefault(f, envName, def, strconv.Atoi, "a whole number")
	f.fs.IntVar(p, name, def, help+" (env "+envName+")")
}

func (f *flags) Bool(p *bool, name, envName string, def bool, help string) {
	def = envDefault(f, envName, def, strconv.ParseBool, "true or false")
	f.fs.BoolVar(p, name, def, help+" (env "+envName+")")
}

func (f *flags) Duration(p *time.Duration, name, envName string, def time.Duration, help string) {
	def = envDefault(f, envName, def, time.ParseDuration, "a duration like 30s")
	f.fs.DurationVar(p, name, def, help+" (env "+envName+")")
}

func (f *flags) Float64(p *float64, name, envName string, def float64, help string) {
	def = envDefault(f, envName, def, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }, "a number")
	f.fs.Float64Var(p, name, def, help+" (env "+envName+")")
}

// Parse parses args; it rejects stray arguments and unparsable environment values.
func (f *flags) Parse(args []string) error {
	if err := f.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if len(f.envErr) > 0 {
		return f.envErr[0]
	}
	if f.fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, f.fs.Arg(0))
	}
	return nil
}

// logging adds the flags every long-running command shares and builds its logger.
type logging struct {
	level  string
	format string
}

func (l *logging) register(f *flags) {
	f.String(&l.level, "log-level", "BACKFILL_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	f.String(&l.format, "log-format", "BACKFILL_LOG_FORMAT", "text", "log format: text or json")
}

func (l *logging) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", errUsage, l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("%w: --log-format %q: want text or json", errUsage, l.format)
	}
}
