package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/aion-dispatch/dispatch/command"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/worker"
)

const workerUsage = `Usage: dispatch worker [--nats URL] --channel NS/QUEUE [--channel NS/QUEUE]... [--id ID]
                       [--max-in-flight N] [--tag TAG]... [--label K=V]... [--serve] [--drain-timeout D] [--heartbeat D]
                       [--creds FILE] [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] [-v] -- CMD [ARGS...]

Makes any program a dispatch worker: it connects to dispatch over NATS,
registers on its channels, and runs CMD for each activity it is sent.

Per activity (the default), CMD runs once with the activity's input on its
stdin; what it writes to stdout is the completed output, a non-zero exit is a
failure carrying the tail of its stderr, and the activity's start-to-close
stops it (SIGTERM to its process group, SIGKILL after a grace). It sees
DISPATCH_WORKFLOW_ID, DISPATCH_ACTIVITY_TYPE, DISPATCH_TASK_QUEUE and
DISPATCH_CONTENT_TYPE in its environment. With --serve, one CMD keeps
running and is sent activities as JSON lines on stdin, answering on stdout
(docs/workers.md has the format), so a Python or Node worker pays no start
cost per activity; it is restarted, with a backoff, if it dies.

SIGTERM or SIGINT drains the worker: it stops taking work, deregisters,
finishes what it has (bounded by --drain-timeout), and exits 0.

Flags:
  --nats URL            the NATS server dispatch listens on (default nats://127.0.0.1:4222,
                        the server "dispatch run" embeds)
  --channel NS/QUEUE    a channel to serve (repeatable; at least one)
  --id ID               the worker's id, which routing scripts choose and journals record
                        (default HOSTNAME-PID)
  --max-in-flight N     activities held at once; more are rejected, not queued (default 1)
  --tag TAG             an affinity tag routing scripts see, such as gpu or region=eu (repeatable)
  --label K=V           a label routing scripts see as labels.K, such as region=eu (repeatable;
                        at most 32, keys up to 63 bytes, values up to 255)
  --serve               keep one CMD running and speak JSON lines with it
  --drain-timeout D     how long a drain waits for running activities before it cancels
                        them (default 30s; 0 waits for ever)
  --heartbeat D         publish status every D even when idle, for dispatch nodes that
                        cannot read the server's disconnect advisories (default off)
  --creds FILE          a NATS credentials file (for a server that asks for one)
  --tls-ca FILE         a CA file to trust for the NATS server's certificate
  --tls-cert FILE, --tls-key FILE
                        a client certificate and its key for NATS
  -v                    log the worker's registrations and its drain, beside its warnings

Exit codes: 0 drained after SIGTERM or SIGINT, 1 could not start or lost its
connection, 2 bad command line.

Example:
  dispatch worker --channel prod/email --max-in-flight 4 --label region=eu -- ./send-email.sh
  dispatch worker --channel prod/ml --serve -- python3 examples/python/worker.py
`

// workerOpts are the flags of dispatch worker.
type workerOpts struct {
	url          string
	channels     stringList
	id           string
	maxInFlight  int
	tags         stringList
	labels       labelFlags
	serve        bool
	drainTimeout time.Duration
	heartbeat    time.Duration
	creds        string
	tlsCA        string
	tlsCert      string
	tlsKey       string
	verbose      bool
	argv         []string
}

func runWorker(args []string, e *env) int {
	var o workerOpts
	fs := newFlags("worker", workerUsage, e.stderr)
	fs.StringVar(&o.url, "nats", nats.DefaultURL, "")
	fs.Var(&o.channels, "channel", "")
	fs.StringVar(&o.id, "id", "", "")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 1, "")
	fs.Var(&o.tags, "tag", "")
	fs.Var(&o.labels, "label", "")
	fs.BoolVar(&o.serve, "serve", false, "")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "")
	fs.DurationVar(&o.heartbeat, "heartbeat", 0, "")
	fs.StringVar(&o.creds, "creds", "", "")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "")
	fs.StringVar(&o.tlsKey, "tls-key", "", "")
	fs.BoolVar(&o.verbose, "v", false, "")
	usage := func(format string, a ...any) int {
		fmt.Fprintf(e.stderr, "dispatch worker: "+format+"\n", a...)
		fmt.Fprintln(e.stderr, `run "dispatch worker --help" for usage`)
		return exitUsage
	}
	// The program and its arguments follow "--", so that its own flags
	// are not taken for ours.
	if i := slices.Index(args, "--"); i >= 0 {
		args, o.argv = args[:i], args[i+1:]
	}
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(e.stdout, workerUsage)
		return exitOK
	} else if err != nil {
		fmt.Fprintln(e.stderr, `run "dispatch worker --help" for usage`)
		return exitUsage
	}
	if fs.NArg() > 0 {
		return usage("%q: the program goes after --, as in: dispatch worker --channel prod/email -- %s", fs.Arg(0), strings.Join(fs.Args(), " "))
	}
	switch {
	case len(o.argv) == 0:
		return usage("no program: give it after --, as in: dispatch worker --channel prod/email -- ./send.sh")
	case len(o.channels) == 0:
		return usage("no --channel: give at least one NS/QUEUE to serve")
	case o.maxInFlight < 1:
		return usage("--max-in-flight %d: want 1 or more", o.maxInFlight)
	case o.drainTimeout < 0:
		return usage("--drain-timeout %s is negative", o.drainTimeout)
	case o.heartbeat < 0:
		return usage("--heartbeat %s is negative", o.heartbeat)
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return usage("--tls-cert and --tls-key go together")
	case len(o.labels) > engine.MaxLabels:
		return usage("--label: %d labels; the limit is %d", len(o.labels), engine.MaxLabels)
	}
	// Checked before connecting: a worker may wait for NATS for ever.
	for _, c := range o.channels {
		if _, err := protocol.ParseChannel(c); err != nil {
			return usage("--channel %s: %v", c, err)
		}
	}
	if o.id == "" {
		o.id = defaultWorkerID()
	} else if err := protocol.CheckToken(o.id); err != nil {
		return usage("--id %s: a worker id is a NATS subject token: %v", o.id, err)
	}
	return o.run(e)
}

// defaultWorkerID is HOSTNAME-PID, the host name's dots and any other
// character a subject token cannot hold made dashes (host.example.com
// gives host-example-com-4242).
func defaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	return tokenOf(host) + "-" + strconv.Itoa(os.Getpid())
}

// tokenOf replaces what a subject token cannot hold with dashes.
func tokenOf(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f {
			return '-'
		}
		return r
	}, s)
}

func (o *workerOpts) run(e *env) int {
	level := slog.LevelInfo
	if !o.verbose {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})) // the worker library names the worker
	fail := func(format string, a ...any) int {
		fmt.Fprintf(e.stderr, "dispatch worker %s: "+format+"\n", append([]any{o.id}, a...)...)
		return exitError
	}

	handle, stop, err := o.handler(e.stderr, log)
	if err != nil {
		return fail("%v", err)
	}
	defer stop()

	// Signals first: a SIGTERM during the connect ends it too.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	if e.notify != nil {
		e.notify(sigs, os.Interrupt, syscall.SIGTERM)
		defer e.stopNotify(sigs)
	}
	go func() {
		select {
		case s := <-sigs:
			log.Info("draining", "signal", s.String())
			cancel()
		case <-ctx.Done():
		}
	}()

	lost, connected := make(chan struct{}), make(chan struct{})
	var connectedOnce sync.Once
	nc, err := nats.Connect(o.url,
		nats.ConnectHandler(func(*nats.Conn) { connectedOnce.Do(func() { close(connected) }) }),
		nats.Name("dispatch worker "+o.id),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(250*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS; reconnecting", "url", o.url, "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Warn("reconnected to NATS", "url", o.url) }),
		nats.ClosedHandler(func(*nats.Conn) { close(lost) }),
		natsAuth(o.creds, o.tlsCA, o.tlsCert, o.tlsKey),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("NATS error", "subject", subject, "err", err)
		}),
	)
	if err != nil {
		return fail("connect to %s: %v", o.url, err)
	}
	defer nc.Close()
	if !nc.IsConnected() { // a worker may start before dispatch does
		fmt.Fprintf(e.stderr, "dispatch worker %s: waiting for NATS at %s\n", o.id, o.url)
		select {
		case <-connected:
		case <-ctx.Done():
			fmt.Fprintf(e.stderr, "dispatch worker %s: stopped before NATS at %s answered\n", o.id, o.url)
			return exitOK
		}
	}

	w, err := worker.New(nc, worker.Options{
		ID: o.id, Channels: o.channels, MaxInFlight: o.maxInFlight, Tags: o.tags, Labels: o.labels,
		Heartbeat: o.heartbeat, DrainTimeout: o.drainTimeout, Logger: log,
	}, handle)
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(e.stderr, "dispatch worker %s: serving %v on %s, %d at a time: %s\n", o.id, []string(o.channels), o.url, o.maxInFlight, o.argv[0])
	err = w.Run(ctx)
	select {
	case <-lost:
		if err == nil {
			err = errors.New("connection closed")
		}
	default:
	}
	if err != nil {
		return fail("%v", err)
	}
	fmt.Fprintf(e.stderr, "dispatch worker %s: drained\n", o.id)
	return exitOK
}

// handler is the worker's handler: the program run per activity, or kept
// running with --serve; stop ends it.
func (o *workerOpts) handler(stderr io.Writer, log *slog.Logger) (worker.Handler, func(), error) {
	prog := command.Program{Path: o.argv[0], Args: o.argv[1:], Stderr: stderr}
	if !o.serve {
		r, err := command.NewRunner(command.RunnerOptions{Program: prog})
		if err != nil {
			return nil, nil, err
		}
		return r.Handle, func() {}, nil
	}
	s, err := command.StartServer(command.ServerOptions{Program: prog, MaxInFlight: o.maxInFlight, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	stop := func() {
		// The drain is over: the program has closed stdin and then
		// SIGTERM to exit, and is killed after that grace.
		ctx, cancel := context.WithTimeout(context.Background(), command.DefaultKillGrace)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			log.Warn("stopping the program", "program", o.argv[0], "err", err)
		}
	}
	return s.Handle, stop, nil
}

// natsAuth is the option that sets the credentials and TLS that are given.
func natsAuth(creds, ca, cert, key string) nats.Option {
	return func(o *nats.Options) error {
		var opts []nats.Option
		if creds != "" {
			opts = append(opts, nats.UserCredentials(creds))
		}
		if ca != "" {
			opts = append(opts, nats.RootCAs(ca))
		}
		if cert != "" {
			opts = append(opts, nats.ClientCert(cert, key))
		}
		for _, opt := range opts {
			if err := opt(o); err != nil {
				return err
			}
		}
		return nil
	}
}

// labelFlags are the --label flags: KEY=VALUE each, a key given once.
type labelFlags map[string]string

func (l *labelFlags) String() string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(*l)) {
		out = append(out, k+"="+(*l)[k])
	}
	return strings.Join(out, ",")
}

// Set adds one label, refusing what engine.CheckLabel refuses.
func (l *labelFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("%q: want KEY=VALUE, as in region=eu", v)
	}
	if _, dup := (*l)[k]; dup {
		return fmt.Errorf("label %s given twice", k)
	}
	if err := engine.CheckLabel(k, val); err != nil {
		return err
	}
	if *l == nil {
		*l = labelFlags{}
	}
	(*l)[k] = val
	return nil
}
