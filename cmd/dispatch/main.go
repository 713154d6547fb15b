// Command dispatch validates channel configs, asks routing scripts for
// decisions and times them, runs channels with simulated local workers, checks golden
// scenarios, replays journals, makes any program a worker, serves a node,
// sends activities to one, and says what it was built from.
//
// Usage:
//
//	dispatch validate -c FILE [--against JOURNAL] [--json]
//	dispatch route -c FILE --channel NS/QUEUE --candidates JSON [--exclude ID]... [--request JSON] [--json]
//	dispatch route --script FILE [--lang lua|expr] [--timeout D] [--channel NS/QUEUE] --candidates JSON [...]
//	dispatch bench -c FILE --channel NS/QUEUE (--candidates JSON|@FILE|N [--exclude ID]... [--request JSON] | --journal FILE) [--duration D] [--json]
//	dispatch run [-c FILE] [--requests FILE|-] [--journal FILE [--fsync MODE]] [--watch [--poll D]] [--seed N] [--concurrency N] [--sample N] [-v]
//	dispatch test [DIR|FILE]... [-update] [-run REGEXP]
//	dispatch replay --journal FILE [--what-if SCRIPT --channel NS/QUEUE]
//	dispatch worker [--nats URL] --channel NS/QUEUE... [--id ID] [--max-in-flight N] [--tag TAG]... [--serve] -- CMD [ARGS...]
//	dispatch serve [-c FILE] [--nats URL | --nats-listen ADDR] [--http ADDR] [--journal FILE] [--drain-timeout D]
//	dispatch submit --channel NS/QUEUE [--nats URL | --http URL] --input JSON [--count N --concurrency C] [--timeout D] [--json]
//	dispatch schema
//	dispatch version [--json]
//	dispatch completion bash|zsh
//
// Run "dispatch help COMMAND" for a command's flags and an example.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/node"
	"github.com/aion-dispatch/dispatch/router"
)

// Exit codes shared by every command.
const (
	exitOK       = 0
	exitError    = 1 // the command ran and failed, or found problems
	exitUsage    = 2 // the command line is wrong
	exitNoWorker = 3 // route: the script chose no worker
)

// subcommand is one command of dispatch: its work is a plain function of its arguments
// and environment, returning the exit code, so it is testable as is.
type subcommand struct {
	name    string
	summary string
	usage   string // flags and an example, shown by --help
	run     func(args []string, e *env) int
}

// env is what a command gets from the process: its streams, and signals.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// notify and stopNotify relay signals to a channel, as signal.Notify
	// and signal.Stop do; tests send their own.
	notify     func(c chan<- os.Signal, sig ...os.Signal)
	stopNotify func(c chan<- os.Signal)
	// started, if set, is given the node `run` starts (tests watch it).
	started func(*node.Node)
	// serving, if set, is told where `serve` listens once it serves.
	serving func(serving)
}

// signals relays SIGINT, SIGTERM and SIGHUP to the channel it returns
// (when the env takes signals), until stop is called.
func (e *env) signals() (sigs chan os.Signal, stop func()) {
	sigs = make(chan os.Signal, 4)
	if e.notify == nil {
		return sigs, func() {}
	}
	e.notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	return sigs, func() { e.stopNotify(sigs) }
}

// loadConfig loads the config at path with a compiler the watcher can
// share, printing its problems to stderr; ok is false when it failed.
func loadConfig(path string, stderr io.Writer) (cfg *config.Config, compiler *router.Compiler, ok bool) {
	compiler = router.NewCompiler(router.Limits{})
	cfg, err := config.Load(path, config.Options{Compiler: compiler})
	if err != nil {
		printConfigErrors(stderr, err)
		return nil, nil, false
	}
	return cfg, compiler, true
}

// plain adapts a command that needs only its streams.
func plain(f func(args []string, stdin io.Reader, stdout, stderr io.Writer) int) func([]string, *env) int {
	return func(args []string, e *env) int { return f(args, e.stdin, e.stdout, e.stderr) }
}

func commands() []subcommand {
	return []subcommand{
		{"validate", "load a config, compile every script, report every problem", validateUsage, plain(runValidate)},
		{"route", "ask a channel's routing script, or a script file, for one decision", routeUsage, plain(runRoute)},
		{"bench", "time a channel's routing script: decisions/s, latency, allocations", benchUsage, plain(runBench)},
		{"run", "run the channels and their workers (simulated, or real programs) over a load of activities", runUsage, runRun},
		{"test", "run golden scenarios and compare their journals", testUsage, plain(runTest)},
		{"replay", "check and replay a journal, or test another script against it", replayUsage, plain(runReplay)},
		{"worker", "make any program a worker, connected to dispatch over NATS", workerUsage, runWorker},
		{"serve", "run a dispatch node that takes activities over NATS and HTTP, with metrics", serveUsage, runServe},
		{"submit", "send activities to a running dispatch serve over NATS or HTTP, one or a load", submitUsage, plain(runSubmit)},
		{"schema", "print the JSON Schema of the config file, for editors (yaml-language-server)", schemaUsage, plain(runSchema)},
		{"version", "print the versions dispatch was built from (module, Go, gopher-lua, expr, NATS, VCS revision)", versionUsage, plain(runVersion)},
		{"completion", "print a bash or zsh completion script for the commands and their flags", completionUsage, plain(runCompletion)},
	}
}

func main() {
	os.Exit(runEnv(os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		notify: signal.Notify, stopNotify: signal.Stop}))
}

// run runs a command with the given streams and no signals.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runEnv(args, &env{stdin: stdin, stdout: stdout, stderr: stderr})
}

// runEnv dispatches to the subcommand named by args[0].
func runEnv(args []string, e *env) int {
	stdout, stderr := e.stdout, e.stderr
	if len(args) == 0 {
		mainUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c, ok := lookup(args[1]); ok {
				fmt.Fprint(stdout, c.usage)
				return exitOK
			}
			fmt.Fprintf(stderr, "dispatch help: unknown command %q\n", args[1])
			return exitUsage
		}
		mainUsage(stdout)
		return exitOK
	}
	c, ok := lookup(name)
	if !ok {
		fmt.Fprintf(stderr, "dispatch: unknown command %q\n\n", name)
		mainUsage(stderr)
		return exitUsage
	}
	return c.run(args[1:], e)
}

func lookup(name string) (subcommand, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return subcommand{}, false
}

func mainUsage(w io.Writer) {
	fmt.Fprintln(w, "dispatch routes each activity of a workflow engine to one worker, chosen by a Lua or expr script.")
	fmt.Fprintln(w, "\nUsage:\n\n\tdispatch COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "\t%-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"dispatch help COMMAND\" or \"dispatch COMMAND --help\" for a command's flags and an example.")
	fmt.Fprintln(w, "Exit codes: 0 success, 1 failure, 2 bad command line, 3 no worker chosen (route),")
	fmt.Fprintln(w, "130 and 143 a run interrupted by SIGINT or SIGTERM.")
}

// newFlags returns a flag set whose --help prints the command's usage to
// stdout and whose errors go to stderr; a flagProbe as stderr is told of it.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("dispatch "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // parseFlags prints the usage: to stdout for --help
	if p, ok := stderr.(*flagProbe); ok {
		p.sets = append(p.sets, fs)
	}
	return fs
}

// decisionFlags are the flags of the commands that ask a channel's script
// for decisions (route, bench): the config, the channel, the candidates,
// the request, the excluded workers and --json.
type decisionFlags struct {
	config, channel, candidates, request *string
	excluded                             stringList
	asJSON                               *bool
}

func addDecisionFlags(fs *flag.FlagSet) *decisionFlags {
	f := &decisionFlags{
		config:     fs.String("config", "config/dispatch.yaml", ""),
		channel:    fs.String("channel", "", ""),
		candidates: fs.String("candidates", "", ""),
		request:    fs.String("request", "", ""),
		asJSON:     fs.Bool("json", false, ""),
	}
	fs.StringVar(f.config, "c", "config/dispatch.yaml", "")
	fs.Var(&f.excluded, "exclude", "")
	return f
}

// router loads the config and returns the router of channel ch, as the
// engine would run it; or, when the config does not load or has no such
// channel, the exit code, its problems printed.
func (f *decisionFlags) router(ch engine.ChannelName, c complaints) (*router.Script, int) {
	cfg, err := config.Load(*f.config, config.Options{})
	if err != nil {
		printConfigErrors(c.stderr, err)
		return nil, exitError
	}
	channel, ok := cfg.Channel(ch)
	if !ok {
		return nil, c.fail("%v: %s is not in %s", engine.ErrUnknownChannel, *f.channel, cfg.File)
	}
	return channel.Router(cfg.File), -1
}

// complaints print a command's messages to stderr as "dispatch NAME: ..."
// and return the exit code: fail for an error, usage for a flag's value
// that is wrong.
type complaints struct {
	name   string
	stderr io.Writer
}

func (c complaints) fail(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "dispatch "+c.name+": "+format+"\n", a...)
	return exitError
}

func (c complaints) usage(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "dispatch "+c.name+": "+format+"\n", a...)
	return exitUsage
}

// parseFlags parses args and returns the exit code to stop with, or -1 to go on.
func parseFlags(fs *flag.FlagSet, usage string, args []string, stdout io.Writer) int {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return exitOK
	case err != nil:
		fmt.Fprintf(fs.Output(), "run \"%s --help\" for usage\n", fs.Name())
		return exitUsage
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage
	}
	return -1
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
