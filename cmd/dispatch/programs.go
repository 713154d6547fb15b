package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/aion-dispatch/dispatch/broker"
	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/remote"
)

// remoteWorkers is what a run needs for workers beyond the process: NATS
// (the embedded server, or a connection to one), the transport over it,
// and the programs of the config's exec workers.
type remoteWorkers struct {
	url       string
	broker    *broker.Broker // nil when joining a server
	nc, sys   *nats.Conn     // sys: the system account's, for disconnect advisories (embedded only)
	transport *remote.Transport
	programs  *programs
	join      []nats.Option // how nc joined a server given by URL: TLS, credentials
}

// startConfigRemote starts the NATS side of cfg (startRemote) as the
// command line says: a --nats URL or --nats-listen ADDR wins over the
// config's nats key.
func startConfigRemote(ctx context.Context, prog string, cfg *config.Config, url, listen string, log *slog.Logger, stderr io.Writer) (*remoteWorkers, error) {
	var nc config.NATS
	if cfg.NATS != nil {
		nc = *cfg.NATS
	}
	switch {
	case url != "":
		nc.URL, nc.Listen = url, ""
	case listen != "":
		nc = config.NATS{Listen: listen, HeartbeatTimeout: nc.HeartbeatTimeout}
	}
	names := make([]engine.ChannelName, 0, len(cfg.Channels))
	for _, ch := range cfg.Channels {
		names = append(names, ch.Name)
	}
	return startRemote(ctx, prog, nc, names, log, stderr)
}

// startRemote starts the embedded NATS server on c.Listen (unless c.URL
// names one to join), connects, and starts the transport, knowing
// channels.
func startRemote(ctx context.Context, prog string, c config.NATS, channels []engine.ChannelName, log *slog.Logger, stderr io.Writer) (*remoteWorkers, error) {
	url, listen := c.URL, c.Listen
	if listen == "" {
		listen = broker.DefaultAddr
	}
	rw := &remoteWorkers{url: url}
	fail := func(err error) (*remoteWorkers, error) {
		rw.close(context.Background())
		return nil, err
	}
	var err error
	if url == "" {
		rw.broker, err = broker.Start(ctx, broker.Options{Addr: listen, Logger: log})
		if err != nil {
			return fail(fmt.Errorf("start the embedded NATS server on %s: %w", listen, err))
		}
		rw.url = rw.broker.URL()
		if !loopback(listen) {
			fmt.Fprintf(stderr, "%s: warning: the embedded NATS server on %s takes any client without credentials: any of them can read the activities and answer for a worker (docs/protocol.md, \"Trust boundary\"); for workers on other machines, give nats.url a server with credentials\n", prog, listen)
		}
		fmt.Fprintf(stderr, "%s: NATS listening on %s (workers: dispatch worker --nats %s --channel NS/QUEUE -- CMD)\n", prog, rw.url, rw.url)
		// No reconnect buffer: a request published while the connection
		// is down would reach a worker long after its attempt was given up.
		if rw.nc, err = rw.broker.Connect(nats.Name(prog), nats.ReconnectBufSize(-1)); err != nil {
			return fail(err)
		}
		if rw.sys, err = rw.broker.ConnectSystem(nats.Name(prog + " (advisories)")); err != nil {
			return fail(err)
		}
	} else {
		opts := []nats.Option{nats.MaxReconnects(-1)}
		if c.CA != "" {
			opts = append(opts, nats.RootCAs(c.CA))
		}
		if c.Cert != "" {
			opts = append(opts, nats.ClientCert(c.Cert, c.Key))
		}
		rw.join = slices.Clip(opts)
		if c.Creds != "" {
			rw.join = append(rw.join, nats.UserCredentials(c.Creds))
		}
		if rw.nc, err = rw.connect(prog); err != nil {
			return fail(err)
		}
		if c.SystemCreds != "" {
			sys := append(slices.Clip(opts), nats.UserCredentials(c.SystemCreds), nats.Name(prog+" (advisories)"))
			if rw.sys, err = nats.Connect(url, sys...); err != nil {
				return fail(fmt.Errorf("connect to NATS at %s with the system account's credentials (%s): %w", url, c.SystemCreds, err))
			}
		} else {
			log.Warn("no nats.system_creds: worker exits are seen only from heartbeats (dispatch worker --heartbeat) and deregistrations", "url", url)
		}
	}
	rw.transport, err = remote.New(ctx, remote.Options{Conn: rw.nc, Advisories: rw.sys, Channels: channels, Logger: log,
		HeartbeatTimeout: c.HeartbeatTimeout})
	if err != nil {
		return fail(err)
	}
	for _, nc := range []*nats.Conn{rw.nc, rw.sys} {
		if nc != nil { // slow consumers and other async errors: logged and counted
			nc.SetErrorHandler(rw.transport.ErrorHandler(nil))
		}
	}
	self, err := selfPath()
	if err != nil {
		return fail(err)
	}
	rw.programs = &programs{self: self, url: rw.url, log: log, kill: make(chan struct{})}
	// The programs join as the node does: with its credentials and TLS,
	// and, when the node cannot read disconnect advisories, sending
	// heartbeats so that their exits are seen.
	for _, f := range []struct{ flag, value string }{{"--creds", c.Creds}, {"--tls-ca", c.CA}, {"--tls-cert", c.Cert}, {"--tls-key", c.Key}} {
		if f.value != "" && url != "" {
			rw.programs.join = append(rw.programs.join, f.flag, f.value)
		}
	}
	if rw.sys == nil {
		rw.programs.join = append(rw.programs.join, "--heartbeat", programHeartbeat.String())
	}
	return rw, nil
}

// connect opens another connection to the NATS server the node uses, as
// the node's own joined it, named name (a front door's, say). Like the
// node's, it buffers nothing while reconnecting: what is published then
// fails at once rather than arrive late.
func (rw *remoteWorkers) connect(name string) (*nats.Conn, error) {
	if rw.broker != nil {
		return rw.broker.Connect(nats.Name(name), nats.ReconnectBufSize(-1))
	}
	nc, err := nats.Connect(rw.url, append(slices.Clip(rw.join), nats.Name(name), nats.ReconnectBufSize(-1))...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", rw.url, err)
	}
	return nc, nil
}

// close stops the programs, then the transport, the connections and the
// server.
func (rw *remoteWorkers) close(ctx context.Context) error {
	var errs []error
	if rw.programs != nil {
		rw.programs.wait(ctx)
	}
	if rw.transport != nil {
		errs = append(errs, rw.transport.Close(ctx))
	}
	for _, nc := range []*nats.Conn{rw.nc, rw.sys} {
		if nc != nil {
			nc.Close()
		}
	}
	if rw.broker != nil {
		errs = append(errs, rw.broker.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// selfPath is this program, to start `dispatch worker` with. A test binary
// is not dispatch: its tests put a dispatch in PATH (testscript.Main).
func selfPath() (string, error) {
	self := os.Args[0]
	if testing.Testing() {
		self = "dispatch"
	}
	p, err := exec.LookPath(self)
	if err != nil {
		return "", fmt.Errorf("find dispatch itself (%s) to start workers with: %w", self, err)
	}
	return filepath.Abs(p)
}

// programs runs the config's exec workers as `dispatch worker` processes
// and restarts them as their restart_after says. It implements
// node.Programs.
type programs struct {
	self, url string
	join      []string // the flags that join NATS as the node did (credentials, TLS, heartbeat)
	log       *slog.Logger
	wg        sync.WaitGroup
	kill      chan struct{} // closed when the programs had their time to drain
	killOnce  sync.Once
}

// programHeartbeat is how often an exec worker reports when the node
// cannot read disconnect advisories.
const programHeartbeat = time.Second

// Start implements node.Programs: it starts w's program and a goroutine
// that restarts it when it dies, until stop (or ctx) ends it.
func (p *programs) Start(ctx context.Context, channel engine.ChannelName, w config.Worker) (func(), error) {
	args := append([]string{"worker", "--nats", p.url, "--channel", channel.Short(), "--id", w.ID,
		"--max-in-flight", strconv.Itoa(w.MaxInFlight)}, p.join...)
	for _, t := range w.Tags {
		args = append(args, "--tag", t)
	}
	for _, k := range slices.Sorted(maps.Keys(w.Labels)) {
		args = append(args, "--label", k+"="+w.Labels[k])
	}
	if w.Serve {
		args = append(args, "--serve")
	}
	args = append(append(args, "--"), w.Exec...)
	log := p.log.With("channel", channel.Short(), "worker", w.ID)

	ctx, cancel := context.WithCancel(ctx)
	cmd, err := p.start(args, log)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("start %s: %w", w.Exec[0], err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			select {
			case err := <-waited:
				if ctx.Err() != nil {
					return
				}
				if w.RestartAfter <= 0 {
					log.Warn("worker program exited; not restarted (no restart_after)", "err", exitText(err))
					return
				}
				log.Warn("worker program exited; restarting", "err", exitText(err), "after", w.RestartAfter)
				t := time.NewTimer(w.RestartAfter)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				if cmd, err = p.start(args, log); err != nil {
					log.Error("worker program not restarted", "err", err)
					return
				}
			case <-ctx.Done():
				// Drain: SIGTERM, and the worker finishes what it has,
				// unless the close runs out of time.
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-waited:
				case <-p.kill:
					log.Warn("worker program did not drain in time; killed")
					_ = cmd.Process.Kill()
					<-waited
				}
				return
			}
		}
	}()
	return cancel, nil
}

// start starts one `dispatch worker` process, its stderr logged line by
// line.
func (p *programs) start(args []string, log *slog.Logger) (*exec.Cmd, error) {
	cmd := exec.Command(p.self, args...)
	// A pipe of our own (not StderrPipe, which Wait closes, maybe before
	// the last lines are read).
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, err
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer pr.Close()
		logLines(pr, log)
	}()
	return cmd, nil
}

// maxLogLine bounds a logged line of a program's stderr; the rest of a
// longer line is dropped, and the pipe is read on (a reader that stopped
// would kill the program with SIGPIPE).
const maxLogLine = 4 << 10

// logLines logs r's lines until EOF: dispatch worker's own lines at info,
// anything else (its warnings, its program's stderr) at warn.
func logLines(r io.Reader, log *slog.Logger) {
	br := bufio.NewReaderSize(r, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		text := strings.TrimRight(string(line), "\n")
		if errors.Is(err, bufio.ErrBufferFull) {
			text += " [line cut]"
			for errors.Is(err, bufio.ErrBufferFull) { // drop the rest of the line
				_, err = br.ReadSlice('\n')
			}
		}
		if text != "" {
			if routineWorkerLine(text) {
				log.Info("worker program", "line", text)
			} else {
				log.Warn("worker program", "line", text)
			}
		}
		if err != nil {
			return
		}
	}
}

// wait waits for every program to end (after their stops); when ctx ends
// first, those still draining are killed.
func (p *programs) wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.killOnce.Do(func() { close(p.kill) })
		<-done
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// loopback reports whether addr (HOST:PORT) listens on loopback only; an
// empty host is 127.0.0.1 for the broker.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "" || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// routineWorkerLine reports whether a line of a dispatch worker's stderr
// is one of its routine ones (serving, waiting for NATS, drained, its
// info-level log), not a warning or the error it stops with.
func routineWorkerLine(line string) bool {
	if !strings.HasPrefix(line, "dispatch worker ") {
		return strings.Contains(line, " level=INFO ")
	}
	for _, s := range []string{": serving ", ": waiting for NATS at ", ": drained", ": stopped before NATS"} {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// programsStartup bounds how long a run waits for its exec workers to
// register before it starts its load.
const programsStartup = 10 * time.Second

// awaitPrograms waits, at most within, until every exec worker of cfg is
// registered, and returns those that are not (NS/QUEUE/ID), or none. It
// waits on the transport's capacity signal, which a registration fires.
func (rw *remoteWorkers) awaitPrograms(cfg *config.Config, within time.Duration) []string {
	timer := time.NewTimer(within)
	defer timer.Stop()
	var missing []string
	for _, ch := range cfg.Channels {
		for {
			changed := rw.transport.CapacityChanged(ch.Name) // asked before looking
			ws, _ := rw.transport.Workers(context.Background(), ch.Name, engine.ActivityRequest{})
			var absent []string
			for _, w := range ch.Workers {
				if len(w.Exec) > 0 && !slices.ContainsFunc(ws, func(r engine.Worker) bool { return r.ID() == w.ID }) {
					absent = append(absent, ch.Name.Short()+"/"+w.ID)
				}
			}
			if len(absent) == 0 {
				break
			}
			select {
			case <-changed:
				continue
			case <-timer.C:
			}
			missing = append(missing, absent...)
			timer.Reset(0) // the time is up for the other channels too
			break
		}
	}
	return missing
}
