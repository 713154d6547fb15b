package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/broker"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/remote"
)

// guard bounds a wait that should end soon; it only turns a hang into a
// failure.
const guard = 20 * time.Second

// rig is an embedded broker on loopback and a transport over it, with the
// system-account connection that reads the disconnect advisories.
type rig struct {
	b  *broker.Broker
	tr *remote.Transport
	ch engine.ChannelName
}

// rigOpts changes the rig; the zero value is the real thing.
type rigOpts struct {
	noAdvisories bool // the transport does not read the disconnect advisories
}

func newRig(tb testing.TB, ns, queue string, o rigOpts) *rig {
	tb.Helper()
	ch, err := engine.DispatchChannel(ns, queue)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := broker.Start(context.Background(), broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	nc, err := b.Connect()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	opts := remote.Options{Conn: nc, Channels: []engine.ChannelName{ch}}
	if !o.noAdvisories {
		sys, err := b.ConnectSystem()
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(sys.Close)
		opts.Advisories = sys
	}
	tr, err := remote.New(context.Background(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = tr.Close(context.Background()) })
	return &rig{b: b, tr: tr, ch: ch}
}

// live returns the ids of the channel's live workers and their states.
func (r *rig) live(tb testing.TB) map[string]engine.ConsumerStateView {
	tb.Helper()
	ws, err := r.tr.Workers(context.Background(), r.ch, engine.ActivityRequest{})
	if err != nil {
		tb.Fatal(err)
	}
	m := make(map[string]engine.ConsumerStateView, len(ws))
	for _, w := range ws {
		m[w.ID()] = w.State
	}
	return m
}

// waitFor waits, on the transport's capacity signal (a registration, a
// deregistration, a load that went down), until cond holds.
func (r *rig) waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		changed := r.tr.CapacityChanged(r.ch)
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			tb.Fatalf("timed out waiting for %s", what)
		}
	}
}

// waitRegistered waits until every one of ids is a live worker.
func (r *rig) waitRegistered(tb testing.TB, ids ...string) {
	tb.Helper()
	r.waitFor(tb, fmt.Sprint("workers ", ids, " to register"), func() bool {
		live := r.live(tb)
		return !slices.ContainsFunc(ids, func(id string) bool { _, ok := live[id]; return !ok })
	})
}

// lockedBuffer is a bytes.Buffer a process writes to while a test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a dispatch worker process.
type proc struct {
	id     string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed when it has exited and was waited for
	err    error         // Wait's, once done is closed
}

// startWorker starts `dispatch worker --nats URL --channel NS/QUEUE --id ID
// ARGS...` (ARGS include "--" and the program). The process is killed, if
// it still runs, and waited for when the test ends.
func (r *rig) startWorker(tb testing.TB, id string, args ...string) *proc {
	tb.Helper()
	return startWorkerAt(tb, r.b.URL(), r.ch, id, args...)
}

// startWorkerAt starts `dispatch worker --nats url --channel ch --id ID
// ARGS...`, as rig.startWorker does, on any server.
func startWorkerAt(tb testing.TB, url string, ch engine.ChannelName, id string, args ...string) *proc {
	tb.Helper()
	bin, err := exec.LookPath("dispatch") // this test binary, installed by TestMain
	if err != nil {
		tb.Fatal(err)
	}
	argv := append([]string{"worker", "--nats", url, "--channel", ch.Short(), "--id", id}, args...)
	p := &proc{id: id, cmd: exec.Command(bin, argv...), stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	// A race-enabled binary sleeps a second at exit, by default, for the
	// reports of other goroutines; these processes, and the programs they
	// run (this binary too), need not.
	p.cmd.Env = append(os.Environ(), "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { // ends when the process does
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// signal sends sig to the process.
func (p *proc) signal(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("worker %s: %v", p.id, err)
	}
}

// wait waits for the process to exit and returns its exit code (-1 when a
// signal killed it).
func (p *proc) wait(tb testing.TB) int {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(guard):
		tb.Fatalf("worker %s did not exit; its stderr:\n%s", p.id, p.stderr)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	}
	tb.Fatalf("worker %s: %v", p.id, p.err)
	return 0
}
