package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/node"
	"github.com/aion-dispatch/dispatch/router"
)

const runUsage = `Usage: dispatch run [-c FILE] [--requests FILE|-] [--journal FILE [--fsync MODE]]
                    [--watch [--poll DURATION]] [--seed N] [--concurrency N] [--sample N]
                    [--drain-timeout D] [--nats URL | --nats-listen ADDR] [-v]

Starts every channel of the config with its routing script and its local
workers, which behave as their "behavior" says (latency, jitter, fail_rate,
exit_rate, restart_after), and dispatches a load of activities through
them, up to --concurrency at a time. A worker that exits mid-activity is
seen through its link and the activity is re-routed to another; with
restart_after the worker comes back.

A worker takes at most its max_in_flight activities at once. An activity
no worker can take now (none has a free slot, or the script chooses none
or a full one) waits in its channel's backlog, as the config's keys say, per channel or
under defaults: max_backlog (how many may wait; default 10000, a dispatch
beyond it fails at once), when_full (wait, the default, or fail: fail at
once with NoWorkersAvailable) and schedule_to_start (how long one may wait
before it fails with a schedule-to-start timeout; default none).

The load is the requests file, one JSON activity a line, read as it arrives
("-" is stdin, so a pipe that delivers lines over minutes works):

  {"channel": "prod/email", "workflow_id": "wf-1", "activity_type": "send-email",
   "input": {"to": "a@example.com"}, "start_to_close": "2s", "schedule_to_close": "10s",
   "schedule_to_start": "5s"}

("input" is any JSON value, or a string sent as text/plain; "content_type"
overrides, and a string under a JSON content_type must be JSON text. The
timeouts are optional positive durations: start_to_close bounds each
attempt from its send to a worker, schedule_to_start each wait in the
backlog (it overrides the channel's), schedule_to_close everything; a
schedule_to_start longer than the schedule_to_close is refused.) A
line that is not a valid activity (a key given twice, in the line or in its
input, included) is reported with its line number and skipped; a UTF-8
byte-order mark may start the file. A line for a channel the config does
not have is dispatched and fails with "unknown channel" (with --watch, a
config edit may add the channel while lines arrive). Without --requests, a
built-in sample load runs: --sample activities (500 by default) on every
configured channel. A named pipe as --requests waits for a writer (an
interrupt ends the wait).

Workers may also be real programs, on this machine or any other, that
reach dispatch over NATS. A configured worker with exec: [CMD, ARGS...]
is started as a "dispatch worker" process (restarted after its
restart_after if it dies; serve: true keeps one CMD running, speaking JSON
lines), and any "dispatch worker" or program using the worker library that
registers on a channel serves it beside the simulated workers. NATS is
started inside dispatch, on 127.0.0.1:4222 (--nats-listen ADDR; :0 picks
a free port, and the log says which), when the config has an exec worker
or a nats key, or --nats-listen is given; --nats URL joins a server
instead (docs/config.md, "NATS").

Progress goes to stderr (a live line on a terminal, a plain line a second
otherwise), with the activities waiting in a backlog now; at the end a
summary per channel (with its waits: how many, their p50 and p99, the
backlog's peak, the schedule-to-start timeouts), per worker and per router
version goes to stdout. Ctrl-C (SIGINT) or SIGTERM stops reading, lets the
activities in flight finish for up to --drain-timeout and prints the
summary; a second signal abandons them at once.

Flags:
  -c, --config FILE    the config (YAML; default config/dispatch.yaml)
  --requests FILE|-    activities to dispatch, JSONL; "-" for stdin
  --journal FILE       record every step to this journal: created, or appended
                       to if it is one (any other file is refused, untouched);
                       one run at a time may write a journal
  --fsync MODE         journal durability: batch (default), interval or never
  --watch              reload scripts and config when their files change,
                       and on SIGHUP
  --poll DURATION      with --watch, also rehash the files this often, for
                       filesystems without change events (NFS, FUSE)
  --seed N             seed of the simulated behaviour (default 1)
  --concurrency N      activities in flight at most (default 16)
  --sample N           activities per channel in the built-in load (default 500)
  --drain-timeout D    after an interrupt, how long the activities in flight
                       may take to finish before they are abandoned
                       (default 10s)
  --nats URL           join the NATS server at URL for remote workers, instead of
                       starting one
  --nats-listen ADDR   start the embedded NATS server on ADDR (default 127.0.0.1:4222,
                       when the config has an exec worker)
  -v                   log every reload, worker exit and restart

Exit codes: 0 every activity completed, 1 some did not or the run could
not start, 2 usage, 130 interrupted by SIGINT, 143 by SIGTERM (the summary
is printed first). An activity that does not complete: it failed; it timed
out (start-to-close, schedule-to-close, or schedule-to-start: it waited in
the backlog too long); its channel's backlog was full (max_backlog); no
worker could take it under when_full: fail; an error (the summary says
why).

Examples:
  dispatch run -c config/dispatch.yaml
  dispatch run -c config/dispatch.yaml --requests requests.jsonl --journal journal.jsonl
  tail -f requests.jsonl | dispatch run -c config/dispatch.yaml --requests - --watch
`

// runOptions are run's flags.
type runOptions struct {
	config      string
	requests    string
	journal     string
	fsync       string
	watch       bool
	poll        time.Duration
	seed        uint64
	concurrency int
	sample      int
	drain       time.Duration
	natsURL     string
	natsListen  string
	verbose     bool
}

func runRun(args []string, e *env) int {
	fs := newFlags("run", runUsage, e.stderr)
	var o runOptions
	fs.StringVar(&o.config, "config", "config/dispatch.yaml", "")
	fs.StringVar(&o.config, "c", "config/dispatch.yaml", "")
	fs.StringVar(&o.requests, "requests", "", "")
	fs.StringVar(&o.journal, "journal", "", "")
	fs.StringVar(&o.fsync, "fsync", "batch", "")
	fs.BoolVar(&o.watch, "watch", false, "")
	fs.DurationVar(&o.poll, "poll", 0, "")
	fs.Uint64Var(&o.seed, "seed", 1, "")
	fs.IntVar(&o.concurrency, "concurrency", 16, "")
	fs.IntVar(&o.sample, "sample", 500, "")
	fs.DurationVar(&o.drain, "drain-timeout", 10*time.Second, "")
	fs.StringVar(&o.natsURL, "nats", "", "")
	fs.StringVar(&o.natsListen, "nats-listen", "", "")
	fs.BoolVar(&o.verbose, "v", false, "")
	if code := parseFlags(fs, runUsage, args, e.stdout); code >= 0 {
		return code
	}
	usage := func(format string, args ...any) int {
		fmt.Fprintf(e.stderr, "dispatch run: "+format+"\n", args...)
		return exitUsage
	}
	fsync, err := journal.ParseFsync(o.fsync)
	switch {
	case o.config == "":
		return usage("-c FILE: the config must not be empty")
	case o.concurrency < 1:
		return usage("--concurrency %d: want at least 1", o.concurrency)
	case o.sample < 1:
		return usage("--sample %d: want at least 1", o.sample)
	case o.drain <= 0:
		return usage("--drain-timeout %s: want a positive duration", o.drain)
	case o.poll < 0 || (o.poll > 0 && !o.watch):
		return usage("--poll needs --watch and a positive duration")
	case err != nil:
		return usage("--fsync: %v", err)
	case o.natsURL != "" && o.natsListen != "":
		return usage("--nats and --nats-listen: give one (join a server, or start one)")
	}
	r := &runner{opts: o, e: e, fsync: fsync}
	return r.run()
}

// runner is one `dispatch run`.
type runner struct {
	opts  runOptions
	e     *env
	fsync journal.Fsync
	con   *console
	log   *slog.Logger

	abandoned bool      // a second interrupt, or the drain timeout, cancelled the activities in flight
	signal    os.Signal // the first interrupt, or nil

	mu          sync.Mutex
	badLines    int
	errorsShown int
	notShown    int
}

// maxErrorsShown is how many dispatch errors are printed one by one; the
// summary counts them all.
const maxErrorsShown = 10

func (r *runner) fail(format string, args ...any) int {
	fmt.Fprintf(r.e.stderr, "dispatch run: "+format+"\n", args...)
	return exitError
}

func (r *runner) run() int {
	e := r.e
	r.con = newConsole(e.stderr)
	level := slog.LevelWarn
	if r.opts.verbose {
		level = slog.LevelDebug
	} else if r.opts.watch {
		level = slog.LevelInfo
	}
	r.log = slog.New(slog.NewTextHandler(r.con, &slog.HandlerOptions{Level: level}))

	cfg, compiler, ok := loadConfig(r.opts.config, e.stderr)
	if !ok {
		return exitError
	}
	var err error

	// Signals: the first interrupt stops reading and drains, the second
	// abandons what is in flight; SIGHUP rescans the files under --watch.
	// They are taken from here on, so that one also ends a wait for a
	// named pipe's writer.
	sigs, stopSignals := e.signals()
	defer stopSignals()

	// The requests file is opened before anything starts, so that a wrong
	// path fails fast.
	var in io.Reader
	var inName string
	switch r.opts.requests {
	case "":
	case "-":
		in, inName = e.stdin, "stdin"
	default:
		// A file, a pipe or a FIFO: streaming is the point. A directory
		// is a mistake worth saying at once.
		f, sig, err := r.openRequests(sigs)
		if s, ok := sig.(syscall.Signal); ok {
			fmt.Fprintf(e.stderr, "dispatch run: interrupted by %s while waiting for a writer to open %s\n", signalName(s), r.opts.requests)
			return 128 + int(s)
		}
		if err != nil {
			return r.fail("%v", err)
		}
		defer f.Close()
		if info, err := f.Stat(); err == nil && info.IsDir() {
			return r.fail("--requests %s: is a directory; want a JSONL file, a pipe or - for stdin", r.opts.requests)
		}
		in, inName = f, r.opts.requests
	}

	var rec engine.Recorder
	var jw *journal.Writer
	if r.opts.journal != "" {
		var recovered string
		jw, recovered, err = journal.Open(r.opts.journal, journal.Options{Fsync: r.fsync})
		if err != nil {
			return r.fail("%v", err)
		}
		if recovered != "" {
			fmt.Fprintf(e.stderr, "%s: warning: %s (a crash cut it short)\n", r.opts.journal, recovered)
		}
		rec = journal.Recorder{Writer: jw}
	}
	nopts := node.Options{Recorder: rec, Seed: r.opts.seed, Logger: r.log}
	if r.opts.watch {
		nopts.RecentDecisions = router.DefaultRecentDecisions // for the reload gate
	}
	var rw *remoteWorkers
	if r.opts.natsURL != "" || r.opts.natsListen != "" || cfg.NATS != nil || hasExec(cfg) {
		rw, err = startConfigRemote(context.Background(), "dispatch run", cfg, r.opts.natsURL, r.opts.natsListen, r.log, e.stderr)
		if err != nil {
			if jw != nil {
				jw.Close()
			}
			return r.fail("%v", err)
		}
		nopts.Remote, nopts.Programs = rw.transport, rw.programs
	}
	closeRemote := func() error {
		if rw == nil {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return rw.close(ctx)
	}
	n, err := node.New(cfg, nopts)
	if err != nil {
		closeRemote()
		if jw != nil {
			jw.Close()
		}
		return r.fail("%v", err)
	}

	dispatchCtx, abandon := context.WithCancel(context.Background())
	defer abandon()

	var watcher *config.Watcher
	stopWatch := func() {}
	if r.opts.watch {
		watcher, err = config.NewWatcher(cfg, config.WatchOptions{Options: config.Options{Compiler: compiler},
			Apply: n.Apply, Gate: n.Gate, Poll: r.opts.poll, Logger: r.log})
		if err != nil {
			n.Close(context.Background())
			closeRemote()
			return r.fail("%v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := watcher.Run(ctx); err != nil {
				r.log.Error("watching stopped", "err", err)
			}
		}()
		stopWatch = func() { cancel(); <-done }
	}

	if e.started != nil {
		e.started(n)
	}
	if rw != nil {
		// The load waits for the exec workers to register, so that its
		// first activities do not wait for them (or fail, on a channel
		// that fails when full).
		if missing := rw.awaitPrograms(cfg, programsStartup); len(missing) > 0 {
			fmt.Fprintf(e.stderr, "dispatch run: warning: worker programs not registered after %s: %s; run with -v to see their output\n",
				programsStartup, strings.Join(missing, ", "))
		}
	}
	stopProgress := r.con.progress(n.Counters)
	interrupted := r.feed(dispatchCtx, n, cfg, in, inName, sigs, watcher, func() { r.abandoned = true; abandon() })
	stopProgress()
	stopWatch()

	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var closeErr error
	if err := n.Close(closeCtx); err != nil {
		closeErr = fmt.Errorf("stop workers: %w", err)
	}
	if err := closeRemote(); err != nil {
		closeErr = errors.Join(closeErr, fmt.Errorf("stop remote workers: %w", err))
	}
	if jw != nil {
		if err := jw.Close(); err != nil {
			closeErr = errors.Join(closeErr, err)
		}
	}

	stats := n.Stats()
	r.summary(e.stdout, stats, watcher)
	code := exitOK
	var why []string
	if c := stats.Counters; c.Completed < c.Dispatched {
		code = exitError
		why = append(why, fmt.Sprintf("%d of %d activities did not complete", c.Dispatched-c.Completed, c.Dispatched))
	}
	r.mu.Lock()
	badLines, notShown := r.badLines, r.notShown
	r.mu.Unlock()
	if notShown > 0 {
		fmt.Fprintf(e.stderr, "(%d more dispatch errors not shown; the summary counts them)\n", notShown)
	}
	if badLines > 0 {
		code = exitError
		if badLines == 1 {
			why = append(why, "1 line of --requests was not a valid activity (reported above)")
		} else {
			why = append(why, fmt.Sprintf("%d lines of --requests were not valid activities (reported above)", badLines))
		}
	}
	switch {
	case r.abandoned:
		fmt.Fprintln(e.stdout, "interrupted: stopped reading requests and abandoned the activities in flight")
	case interrupted:
		fmt.Fprintln(e.stdout, "interrupted: stopped reading requests and let the activities in flight finish")
	}
	if closeErr != nil {
		code = exitError
		why = append(why, closeErr.Error())
	}
	if sig, ok := r.signal.(syscall.Signal); ok {
		// As a shell reports a process its signal ended: 128 + the signal.
		code = 128 + int(sig)
		why = append([]string{"interrupted by " + signalName(sig)}, why...)
	}
	if len(why) > 0 {
		fmt.Fprintf(e.stdout, "exit %d: %s\n", code, strings.Join(why, "; "))
	}
	return code
}

// signalName names the signals that interrupt a run.
func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// openRequests opens the requests file. Opening a named pipe waits for a
// writer, which may never come: an interrupt (returned) ends the wait.
func (r *runner) openRequests(sigs <-chan os.Signal) (*os.File, os.Signal, error) {
	path := r.opts.requests
	if info, err := os.Stat(path); err == nil && info.Mode()&fs.ModeNamedPipe != 0 {
		r.con.printf("%s: waiting for a writer to open the named pipe\n", path)
	}
	type opened struct {
		f   *os.File
		err error
	}
	done := make(chan opened, 1)
	go func() {
		f, err := os.Open(path)
		done <- opened{f, err}
	}()
	for {
		select {
		case o := <-done:
			return o.f, nil, o.err
		case s := <-sigs:
			if s == syscall.SIGHUP {
				continue
			}
			go func() { // the open returns when a writer comes, or never
				if o := <-done; o.f != nil {
					o.f.Close()
				}
			}()
			return nil, s, nil
		}
	}
}

// feed dispatches the activities as they come, at most --concurrency at a
// time, until the input ends or an interrupt; then it waits for those in
// flight (a second interrupt, or the drain timeout after the first,
// abandons them). It reports whether it was interrupted.
func (r *runner) feed(ctx context.Context, n *node.Node, cfg *config.Config, in io.Reader, inName string,
	sigs <-chan os.Signal, watcher *config.Watcher, abandon context.CancelFunc) (interrupted bool) {
	items := make(chan activity)
	stop := make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		emit := func(a activity, err error) bool {
			if err != nil {
				r.mu.Lock()
				r.badLines++
				r.mu.Unlock()
				r.con.printf("%v\n", err)
				return true
			}
			select {
			case items <- a:
				return true
			case <-stop:
				return false
			}
		}
		var err error
		if in == nil {
			for _, a := range sampleLoad(cfg, r.opts.sample) {
				if !emit(a, nil) {
					break
				}
			}
		} else {
			err = readRequests(in, inName, emit)
		}
		close(items)
		readDone <- err
	}()

	slots := make(chan struct{}, r.opts.concurrency)
	var wg sync.WaitGroup
	var drainTimeout <-chan time.Time // runs from the first interrupt
	var drainTimer *time.Timer
	defer func() {
		if drainTimer != nil {
			drainTimer.Stop()
		}
	}()
	onSignal := func(s os.Signal) {
		switch {
		case s == syscall.SIGHUP && watcher != nil:
			r.log.Info("SIGHUP: rescanning the config and scripts")
			watcher.Rescan()
		case s == syscall.SIGHUP:
			r.log.Warn("SIGHUP ignored: run with --watch to reload")
		case interrupted:
			r.con.printf("second interrupt: abandoning the activities in flight\n")
			abandon()
		default:
			interrupted = true
			r.signal = s
			close(stop)
			drainTimer = time.NewTimer(r.opts.drain)
			drainTimeout = drainTimer.C
			r.con.printf("interrupt: letting the activities in flight finish, for up to %s (interrupt again to abandon them)\n", r.opts.drain)
		}
	}
	// drain waits for the activities in flight, still handling signals.
	drain := func() {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		for {
			select {
			case <-done:
				return
			case s := <-sigs:
				onSignal(s)
			case <-drainTimeout:
				drainTimeout = nil
				r.con.printf("drain timeout (%s): abandoning the activities in flight\n", r.opts.drain)
				abandon()
			}
		}
	}
	for {
		select {
		case s := <-sigs:
			onSignal(s)
			if interrupted {
				drain()
				return interrupted
			}
		case a, ok := <-items:
			if !ok {
				if err := <-readDone; err != nil {
					r.con.printf("dispatch run: %v\n", err)
					r.mu.Lock()
					r.badLines++
					r.mu.Unlock()
				}
				drain()
				return interrupted
			}
			acquired := false
			for !acquired && !interrupted {
				select {
				case slots <- struct{}{}:
					acquired = true
				case s := <-sigs:
					onSignal(s)
				}
			}
			if !acquired {
				drain()
				return interrupted
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				r.dispatch(ctx, n, a, inName)
			}()
		}
	}
}

// dispatch runs one activity. Failed activities are a normal outcome of a
// simulation and only counted; other errors (no worker, timeouts, routing
// errors, unknown channels) are also printed, the first few of them.
func (r *runner) dispatch(ctx context.Context, n *node.Node, a activity, inName string) {
	_, err := n.Dispatch(ctx, a.channel.Namespace(), a.req)
	if err == nil || errors.Is(err, engine.ErrActivityFailed) {
		return
	}
	r.mu.Lock()
	show := r.errorsShown < maxErrorsShown
	if show {
		r.errorsShown++
	} else {
		r.notShown++
	}
	r.mu.Unlock()
	if !show {
		return
	}
	where := "sample load"
	if a.line > 0 {
		where = fmt.Sprintf("%s:%d", inName, a.line)
	}
	if errors.Is(err, engine.ErrUnknownChannel) {
		var names []string
		for _, ch := range n.Config().Channels {
			names = append(names, ch.Name.Short())
		}
		r.con.printf("%s: %v (the config has %s)\n", where, err, strings.Join(names, ", "))
		return
	}
	r.con.printf("%s: %v\n", where, err)
}

// hasExec reports whether a worker of cfg runs a real program.
func hasExec(cfg *config.Config) bool {
	for _, ch := range cfg.Channels {
		for _, w := range ch.Workers {
			if len(w.Exec) > 0 {
				return true
			}
		}
	}
	return false
}
