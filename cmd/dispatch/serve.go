package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/metrics"
	"github.com/aion-dispatch/dispatch/node"
	"github.com/aion-dispatch/dispatch/router"
	"github.com/aion-dispatch/dispatch/service"
)

const serveUsage = `Usage: dispatch serve [-c FILE] [--nats URL | --nats-listen ADDR] [--http ADDR]
                      [--journal FILE [--fsync MODE]] [--drain-timeout D] [--dispatch-timeout D]
                      [--watch=false] [--poll D] [--log-level LEVEL] [--log-format FORMAT]

Runs a dispatch node until it is stopped: the channels of the config with
their routing scripts and workers (simulated ones, exec programs, and any
worker that registers over NATS), taking activities to dispatch from a
workflow engine over NATS and HTTP and answering each with its result.

  NATS   request-reply on the channel's subject, aion.dispatch.NS.QUEUE, in the
         queue group aion.dispatch.serve (several nodes share the load); the
         body is a submission, the reply an answer (docs/operations.md)
  HTTP   POST /v1/channels/NS/QUEUE/dispatch with a submission as the body:
         {"workflow_id": "wf-1", "activity_type": "upper", "input": {"text": "hi"},
          "start_to_close": "5s"}
         answered {"status": "completed", "output": ..., "worker_id": ...,
         "conversation_id": ..., "attempts": 1} or {"status": "failed",
         "kind": ..., "error": ...}; GET /v1/channels and
         /v1/channels/NS/QUEUE show the channels; /metrics (Prometheus),
         /healthz and /readyz are for operators

NATS is started inside dispatch on 127.0.0.1:4222 (--nats-listen ADDR; :0
picks a free port) unless --nats URL (or nats.url in the config) joins a
server. The config and its scripts are watched and reloaded as they change
(through the reload gate), and rescanned on SIGHUP. SIGTERM or SIGINT
drains: no new dispatch is taken (the node leaves the queue group, HTTP
answers 503 "draining"), those taken finish for up to --drain-timeout (then
they are answered "draining"), the journal is flushed, and dispatch exits 0;
a second signal exits at once.

Flags:
  -c, --config FILE       the config (YAML; default config/dispatch.yaml)
  --http ADDR             the HTTP address (default 127.0.0.1:8080; :0 picks a free port)
  --nats URL              join the NATS server at URL instead of starting one
  --nats-listen ADDR      the embedded NATS server's address (default 127.0.0.1:4222)
  --journal FILE          record every step to this journal (created, or appended to)
  --fsync MODE            journal durability: batch (default), interval or never
  --drain-timeout D       how long a drain waits for the dispatches in flight (default 30s)
  --dispatch-timeout D    bound of a dispatch whose request sets no schedule_to_close
                          (default 10m; 0 for none)
  --watch                 reload the config and scripts as they change (default true)
  --poll D                also rehash the files this often (NFS, FUSE)
  --seed N                seed of the simulated workers' behaviour (default 1)
  --log-level LEVEL       debug, info (default), warn or error
  --log-format FORMAT     text or json (default: text on a terminal, json otherwise)

Exit codes: 0 stopped by a signal after draining, 1 could not start or
failed while serving, 2 usage, 130/143 a second SIGINT/SIGTERM cut a drain
short.

Examples:
  dispatch serve -c config/dispatch.yaml
  curl -s localhost:8080/v1/channels/prod/upper/dispatch -d '{"workflow_id": "wf-1", "activity_type": "upper", "input": {"text": "hi"}}'
  dispatch submit --channel prod/upper --input '{"text": "hi"}'
`

type serveOptions struct {
	config          string
	natsURL         string
	natsListen      string
	http            string
	journal         string
	fsync           string
	drain           time.Duration
	dispatchTimeout time.Duration
	watch           bool
	poll            time.Duration
	seed            uint64
	logLevel        string
	logFormat       string
}

// defaultHTTPAddr is where `dispatch serve` listens for HTTP by default.
const defaultHTTPAddr = "127.0.0.1:8080"

func runServe(args []string, e *env) int {
	fs := newFlags("serve", serveUsage, e.stderr)
	var o serveOptions
	fs.StringVar(&o.config, "config", "config/dispatch.yaml", "")
	fs.StringVar(&o.config, "c", "config/dispatch.yaml", "")
	fs.StringVar(&o.natsURL, "nats", "", "")
	fs.StringVar(&o.natsListen, "nats-listen", "", "")
	fs.StringVar(&o.http, "http", defaultHTTPAddr, "")
	fs.StringVar(&o.journal, "journal", "", "")
	fs.StringVar(&o.fsync, "fsync", "batch", "")
	fs.DurationVar(&o.drain, "drain-timeout", 30*time.Second, "")
	fs.DurationVar(&o.dispatchTimeout, "dispatch-timeout", service.DefaultDispatchTimeout, "")
	fs.BoolVar(&o.watch, "watch", true, "")
	fs.DurationVar(&o.poll, "poll", 0, "")
	fs.Uint64Var(&o.seed, "seed", 1, "")
	fs.StringVar(&o.logLevel, "log-level", "info", "")
	fs.StringVar(&o.logFormat, "log-format", "", "")
	if code := parseFlags(fs, serveUsage, args, e.stdout); code >= 0 {
		return code
	}
	usage := func(format string, args ...any) int {
		fmt.Fprintf(e.stderr, "dispatch serve: "+format+"\n", args...)
		return exitUsage
	}
	fsync, fsyncErr := journal.ParseFsync(o.fsync)
	var level slog.Level
	levelErr := level.UnmarshalText([]byte(o.logLevel))
	switch {
	case o.config == "":
		return usage("-c FILE: the config must not be empty")
	case o.natsURL != "" && o.natsListen != "":
		return usage("--nats and --nats-listen: give one (join a server, or start one)")
	case o.http == "":
		return usage("--http ADDR: the address must not be empty")
	case o.drain <= 0:
		return usage("--drain-timeout %s: want a positive duration", o.drain)
	case o.dispatchTimeout < 0:
		return usage("--dispatch-timeout %s: want a positive duration, or 0 for none", o.dispatchTimeout)
	case o.poll < 0 || (o.poll > 0 && !o.watch):
		return usage("--poll needs --watch and a positive duration")
	case fsyncErr != nil:
		return usage("--fsync: %v", fsyncErr)
	case levelErr != nil:
		return usage("--log-level %q: want debug, info, warn or error", o.logLevel)
	case o.logFormat != "" && o.logFormat != "text" && o.logFormat != "json":
		return usage("--log-format %q: want text or json", o.logFormat)
	}
	s := &server{opts: o, e: e, fsync: fsync}
	s.log = newLogger(e.stderr, level, o.logFormat)
	return s.serve()
}

// newLogger logs to w at level: as text on a terminal, JSON otherwise,
// unless format says which.
func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if info, err := f.Stat(); err == nil && info.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// server is one `dispatch serve`.
type server struct {
	opts  serveOptions
	e     *env
	fsync journal.Fsync
	log   *slog.Logger
}

func (s *server) fail(format string, args ...any) int {
	fmt.Fprintf(s.e.stderr, "dispatch serve: "+format+"\n", args...)
	return exitError
}

func (s *server) serve() int {
	e := s.e
	cfg, compiler, ok := loadConfig(s.opts.config, e.stderr)
	if !ok {
		return exitError
	}
	// Signals from here on: one that comes while starting stops it.
	sigs, stopSignals := e.signals()
	defer stopSignals()

	// What is started is stopped in the reverse order, whatever happens.
	var stops []func(context.Context) error
	stopAll := func(ctx context.Context) error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			errs = append(errs, stops[i](ctx))
		}
		stops = nil
		return errors.Join(errs...)
	}
	abort := func(format string, args ...any) int {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := stopAll(ctx); err != nil {
			s.log.Error("stopping", "error", err)
		}
		return s.fail(format, args...)
	}

	// Metrics: the node's own registry, never the global one. Each family
	// reads what exists when it is scraped; the node and the watcher are
	// set before the HTTP server starts.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var n *node.Node
	var watcher *config.Watcher
	mopts := metrics.Options{Channels: func() []metrics.ChannelGauge {
		var out []metrics.ChannelGauge
		for _, c := range n.Channels(context.Background()) {
			g := metrics.ChannelGauge{Channel: c.Channel.Short(), Backlog: c.Backlog, Workers: len(c.Workers),
				Figures: make([]metrics.WorkerFigures, len(c.Workers))}
			for i, w := range c.Workers {
				g.Figures[i] = metrics.WorkerFigures{Worker: w.ID, LatencyEWMA: w.LatencyEWMA, LatencyPeakEWMA: w.LatencyPeakEWMA,
					ErrorRate: w.ErrorRate, Exits: w.Exits}
			}
			out = append(out, g)
		}
		return out
	}}
	if s.opts.watch {
		mopts.Reloads = func() metrics.Reloads {
			st := watcher.Stats()
			return metrics.Reloads{Applied: st.Reloads, Refused: st.Refusals, Failed: st.Failures - st.Refusals}
		}
	}
	m, err := metrics.New(reg, mopts)
	if err != nil {
		return s.fail("%v", err)
	}

	var rec engine.Recorder
	var jw *journal.Writer
	var started atomic.Bool // the exec workers registered (or their time ran out): ready
	if s.opts.journal != "" {
		var recovered string
		jw, recovered, err = journal.Open(s.opts.journal, journal.Options{Fsync: s.fsync, Observer: m.Journal()})
		if err != nil {
			return s.fail("%v", err)
		}
		if recovered != "" {
			s.log.Warn("journal recovered (a crash cut it short)", "journal", s.opts.journal, "recovered", recovered)
		}
		stops = append(stops, func(context.Context) error { return jw.Close() })
		rec = journal.Recorder{Writer: jw}
	}

	rw, err := startConfigRemote(context.Background(), "dispatch serve", cfg, s.opts.natsURL, s.opts.natsListen, s.log, e.stderr)
	if err != nil {
		return abort("%v", err)
	}
	stops = append(stops, rw.close)

	nopts := node.Options{Recorder: m.Recorder(rec), Seed: s.opts.seed, Logger: s.log, Remote: rw.transport,
		Programs: rw.programs, WrapRouter: m.Router}
	if s.opts.watch {
		nopts.RecentDecisions = router.DefaultRecentDecisions // for the reload gate
	}
	n, err = node.New(cfg, nopts)
	if err != nil {
		return abort("%v", err)
	}
	stops = append(stops, n.Close)

	if s.opts.watch {
		watcher, err = config.NewWatcher(cfg, config.WatchOptions{Options: config.Options{Compiler: compiler},
			Apply: n.Apply, Gate: n.Gate, Poll: s.opts.poll, Logger: s.log})
		if err != nil {
			return abort("%v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := watcher.Run(ctx); err != nil {
				s.log.Error("watching stopped", "error", err)
			}
		}()
		stops = append(stops, func(context.Context) error { cancel(); <-done; return nil })
	}

	front, err := rw.connect("dispatch serve (front door)")
	if err != nil {
		return abort("%v", err)
	}
	front.SetErrorHandler(rw.transport.ErrorHandler(nil))
	stops = append(stops, func(context.Context) error { front.Close(); return nil })
	svc, err := service.New(service.Options{Node: n, Logger: s.log, DispatchTimeout: s.opts.dispatchTimeout,
		Observer: m, Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}),
		Ready: func() error {
			if !started.Load() {
				return errors.New("starting: waiting for the worker programs to register")
			}
			if jw != nil {
				if err := jw.Err(); err != nil {
					return fmt.Errorf("the journal cannot be written: %w", err)
				}
			}
			return natsReady(rw.nc, front)
		}})
	if err != nil {
		return abort("%v", err)
	}
	if err := svc.ServeNATS(context.Background(), front); err != nil {
		return abort("%v", err)
	}

	ln, err := net.Listen("tcp", s.opts.http)
	if err != nil {
		return abort("listen for HTTP on %s: %v", s.opts.http, err)
	}
	hs := service.NewHTTPServer(ln.Addr().String(), svc.Handler())
	hs.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	httpDone := make(chan error, 1)
	go func() { httpDone <- hs.Serve(ln) }()
	stops = append(stops, func(ctx context.Context) error {
		err := hs.Shutdown(ctx)
		if serr := <-httpDone; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
		return err
	})
	if missing := rw.awaitPrograms(cfg, programsStartup); len(missing) > 0 {
		s.log.Warn("worker programs not registered yet; their output is in this log", "after", programsStartup.String(),
			"workers", strings.Join(missing, ", "))
	}
	started.Store(true)
	fmt.Fprintf(e.stderr, "dispatch serve: serving %d channels: HTTP on http://%s, NATS on %s (subjects aion.dispatch.NS.QUEUE)\n",
		len(cfg.Channels), ln.Addr(), rw.url)
	if e.serving != nil {
		e.serving(serving{http: "http://" + ln.Addr().String(), nats: rw.url, node: n, service: svc})
	}

	// Serve until a signal, or until the HTTP server fails.
	var first os.Signal
	for first == nil {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if watcher != nil {
					s.log.Info("SIGHUP: rescanning the config and scripts")
					watcher.Rescan()
				} else {
					s.log.Info("SIGHUP ignored: started with --watch=false")
				}
				continue
			}
			first = sig
		case err := <-httpDone:
			httpDone <- err // for the stop above
			return abort("HTTP server: %v", err)
		}
	}
	s.log.Info("draining: no new dispatches; waiting for those in flight", "signal", first.String(), "timeout", s.opts.drain.String())
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), s.opts.drain)
	defer cancelDrain()
	drained := make(chan error, 1)
	go func() { drained <- svc.Drain(drainCtx) }()
	var second os.Signal
	var drainErr error
wait:
	for {
		select {
		case drainErr = <-drained:
			break wait
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				continue
			}
			second = sig
			cancelDrain() // what is in flight is answered "draining" at once
			break wait
		}
	}
	if sig, ok := second.(syscall.Signal); ok {
		// At once, but not blind: the abandoned dispatches are answered
		// and the journal flushed if that takes no longer than a moment
		// (a hung disk must not keep a process its operator stopped twice).
		s.log.Warn("second signal: stopping now", "signal", sig.String())
		stopped := make(chan struct{})
		go func() {
			<-drained
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // stop without waiting for anything
			_ = stopAll(ctx)
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(secondSignalGrace):
			s.log.Warn("exiting before the journal and workers stopped", "after", secondSignalGrace.String())
		}
		return 128 + int(sig)
	}
	if drainErr != nil {
		s.log.Warn("drain cut short", "error", drainErr)
	}
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelStop()
	if err := stopAll(stopCtx); err != nil {
		s.log.Error("stopping", "error", err)
		return exitError
	}
	s.log.Info("stopped")
	return exitOK
}

// secondSignalGrace is how long a second signal lets serve answer what it
// abandons and flush its journal before it exits regardless.
const secondSignalGrace = 2 * time.Second

// natsReady reports a NATS connection of the node that is not connected.
func natsReady(conns ...*nats.Conn) error {
	for _, nc := range conns {
		if st := nc.Status(); st != nats.CONNECTED {
			return fmt.Errorf("NATS connection %q is %s", nc.Opts.Name, strings.ToLower(st.String()))
		}
	}
	return nil
}

// serving is what a started `dispatch serve` tells tests.
type serving struct {
	http, nats string
	node       *node.Node
	service    *service.Service
}
