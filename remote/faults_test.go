package remote_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/remote"
	"github.com/aion-dispatch/dispatch/worker"
)

// A request's reply token is crypto-random (at least 128 bits), not a
// sequence number that a client of the account could guess.
func TestReplyTokensAreRandom(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := newPeer(t, e, "p", "i1")
	_, reply, _ := sentRequest(t, e, p)
	tok, ok := strings.CutPrefix(reply, protocol.InboxSubject(e.t.NodeID())+".")
	if !ok || len(tok) < 26 || strings.Contains(tok, ".") {
		t.Fatalf("reply subject %q: token %q is not a random 128-bit token", reply, tok)
	}
}

// logSignal is a slog handler that sends the message of each record that
// contains one of its words on a channel: a test waits for a worker's
// log line instead of sleeping.
type logSignal struct {
	words []string
	c     chan string
}

func newLogSignal(words ...string) *logSignal {
	return &logSignal{words: words, c: make(chan string, 64)}
}

func (l *logSignal) Enabled(context.Context, slog.Level) bool { return true }
func (l *logSignal) Handle(_ context.Context, r slog.Record) error {
	for _, w := range l.words {
		if strings.Contains(r.Message, w) {
			select {
			case l.c <- r.Message:
			default:
			}
		}
	}
	return nil
}
func (l *logSignal) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logSignal) WithGroup(string) slog.Handler      { return l }

// runWorker runs a worker on its own connection until the test ends.
func (e *env) runWorker(t *testing.T, opts worker.Options, h worker.Handler) *worker.Worker {
	t.Helper()
	return runOn(t, connect(t, e.b), opts, h)
}

// runOn runs a worker on nc until the test ends (the test's channel if
// opts names none).
func runOn(t *testing.T, nc *nats.Conn, opts worker.Options, h worker.Handler) *worker.Worker {
	t.Helper()
	if opts.Channels == nil {
		opts.Channels = []string{ns + "/" + queue}
	}
	w, err := worker.New(nc, opts, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); wait(t, "worker "+opts.ID+" to stop", done) })
	return w
}

// Two processes with the same worker id: the second registration is
// refused, and the second process, which hears the id's requests too,
// ignores them (they name the first one's instance): one dispatch runs
// the handler once.
func TestDuplicateIDDoesNotRunTwice(t *testing.T) {
	e := newEnv(t, envOpts{})
	var runs atomic.Int32
	count := func(_ context.Context, req engine.ActivityRequest) (engine.ActivityResult, error) {
		runs.Add(1)
		return engine.Completed(req.Input), nil
	}
	e.startWorker(t, worker.Options{ID: "a"}, count)
	logs := newLogSignal("worker registered", "ignored a request")
	dup := e.runWorker(t, worker.Options{ID: "a", Logger: slog.New(logs)}, count)
	// Logged once its subscriptions and registration reached the server.
	if msg := wait(t, "the duplicate to register", logs.c); msg != "worker registered" {
		t.Fatalf("duplicate logged %q", msg)
	}
	if _, err := e.d.Dispatch(t.Context(), ns, request("wf-1")); err != nil {
		t.Fatal(err)
	}
	if msg := wait(t, "the duplicate to ignore the request", logs.c); !strings.Contains(msg, "ignored a request") {
		t.Fatalf("duplicate logged %q", msg)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("one dispatch ran the handler %d times", n)
	}
	if s := dup.Stats(); s.OtherInstance != 1 {
		t.Fatalf("duplicate's stats %+v, want one request of another instance", s)
	}
}

// An output too large for a message is answered as a failure that says
// so, rather than never; Worker.MaxOutput is the largest that fits.
func TestOversizedOutputIsAnsweredFailed(t *testing.T) {
	e := newEnv(t, envOpts{})
	var size atomic.Int64
	text := func(context.Context, engine.ActivityRequest) (engine.ActivityResult, error) {
		return engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte(strings.Repeat("x", int(size.Load())))}), nil
	}
	w := e.runWorker(t, worker.Options{ID: "a"}, text)
	e.waitFor(t, "worker a", func() bool { return slices.Contains(e.live(t), "a") })
	limit := w.MaxOutput()
	if limit <= 0 || limit >= protocol.MaxBodySize {
		t.Fatalf("max output %d", limit)
	}
	size.Store(int64(limit))
	res, err := e.d.Dispatch(t.Context(), ns, request("wf-1"))
	if err != nil || len(res.Output.Data) != limit {
		t.Fatalf("an output of MaxOutput (%d) bytes: %d bytes, %v", limit, len(res.Output.Data), err)
	}
	for _, n := range []int{protocol.MaxBodySize + 1, 2 << 20} {
		size.Store(int64(n))
		ctx, cancel := context.WithTimeout(t.Context(), guard)
		_, err := e.d.Dispatch(ctx, ns, request("wf-2"))
		cancel()
		if !errors.Is(err, engine.ErrActivityFailed) || !strings.Contains(err.Error(), fmt.Sprintf("output of %d bytes exceeds the message limit", n)) {
			t.Fatalf("an output of %d bytes: %v (stats %+v)", n, err, e.t.Stats())
		}
	}
	if s := w.Stats(); s.TooLarge != 2 {
		t.Fatalf("worker stats %+v", s)
	}
}

// Heartbeat fallback: a worker that deregistered and is finishing a long
// activity keeps publishing its heartbeat until it is done, so the node
// (which reads no advisories) does not deem it gone and run the activity
// again on another worker. The activity lasts until an observer has seen
// enough heartbeats after the deregistration to span the timeout twice.
func TestDrainingWorkerKeepsItsHeartbeat(t *testing.T) {
	const heartbeat, timeout = 10 * time.Millisecond, 200 * time.Millisecond
	e := newEnv(t, envOpts{noAdvisories: true, heartbeatTimeout: timeout})
	obs := connect(t, e.b)
	msgs := make(chan *nats.Msg, 1024)
	sub, err := obs.ChanSubscribe(protocol.SubjectPrefix+".workers.*", msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}
	enough := make(chan struct{}) // closed once a's heartbeats after its deregistration span 2 timeouts
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		left, n := false, 0
		for {
			select {
			case m := <-msgs:
				var st protocol.Status
				switch {
				case m.Subject == protocol.SubjectDeregister:
					left = true
				case left && protocol.DecodeMsg(m, &st) == nil && st.WorkerID == "a":
					if n++; n == int(2*timeout/heartbeat) {
						close(enough)
					}
				}
			case <-stop:
				return
			}
		}
	}()
	var runs atomic.Int32
	started := make(chan struct{}, 4)
	slow := func(ctx context.Context, req engine.ActivityRequest) (engine.ActivityResult, error) {
		if runs.Add(1) > 1 {
			return engine.Failed("ran twice"), nil
		}
		started <- struct{}{}
		select {
		case <-enough:
		case <-stop:
		}
		return engine.Completed(req.Input), nil
	}
	nc := connect(t, e.b)
	w, err := worker.New(nc, worker.Options{ID: "a", Channels: []string{ns + "/" + queue}, Heartbeat: heartbeat}, slow)
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- w.Run(context.Background()) }()
	e.waitFor(t, "a", func() bool { return slices.Contains(e.live(t), "a") })
	done := make(chan error, 1)
	go func() { _, err := e.d.Dispatch(context.Background(), ns, request("wf-1")); done <- err }()
	wait(t, "the activity to start", started)
	e.startWorker(t, worker.Options{ID: "b", Heartbeat: heartbeat}, slow)
	w.Drain()
	if err := wait(t, "the dispatch", done); err != nil {
		t.Fatalf("dispatch: %v; stats %+v", err, e.t.Stats())
	}
	if err := wait(t, "the drain", ran); err != nil {
		t.Fatal(err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("the activity ran %d times; stats %+v", n, e.t.Stats())
	}
	if s := e.t.Stats(); s.HeartbeatExits != 0 {
		t.Fatalf("stats %+v, want no heartbeat exit", s)
	}
}

// While the node's own connection reconnects, Send fails at once with
// ErrNotStarted rather than leave the request in the client's reconnect
// buffer (where, after the ack timeout, it would count as an exit and
// still reach the worker later); the snapshot sees every worker full.
func TestSendWhileReconnectingIsNotStarted(t *testing.T) {
	e := newEnv(t, envOpts{}) // for its broker
	g := &gated{}
	nc := connect(t, e.b, nats.SetCustomDialer(g), nats.ReconnectWait(time.Millisecond), nats.MaxReconnects(-1))
	tr, err := remote.New(t.Context(), remote.Options{Conn: nc, Channels: []engine.ChannelName{channel}, AckTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Close(context.Background()) }()
	e.t = tr // for newPeer and waitFor
	p := newPeer(t, e, "p", "i1")
	e.waitFor(t, "worker p", func() bool { return slices.Contains(e.live(t), "p") })
	ws, _ := tr.Workers(t.Context(), channel, engine.ActivityRequest{})
	open := make(chan struct{})
	g.mu.Lock()
	g.open = open
	g.mu.Unlock()
	defer close(open)
	away := nc.StatusChanged(nats.RECONNECTING)
	defer nc.RemoveStatusListener(away)
	g.kill()
	wait(t, "the node's connection to drop", away)
	if got, _ := tr.Workers(t.Context(), channel, engine.ActivityRequest{}); len(got) != 1 || got[0].State.HasCapacity() {
		t.Fatalf("while reconnecting, the snapshot is %+v, want p full", got)
	}
	conv, err := tr.Open(t.Context(), "wf", channel, "c1")
	if err != nil {
		t.Fatal(err)
	}
	defer conv.Close()
	if err := conv.Link(t.Context(), ws[0]); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends a Send that waits (for an ack that cannot come) when the test fails
	go func() {
		sent <- conv.Send(ctx, engine.DispatchRequest{ConversationID: "c1", Attempt: 1, Request: request("wf")})
	}()
	if err := wait(t, "send", sent); !errors.Is(err, engine.ErrNotStarted) {
		t.Fatalf("send while reconnecting: %v, want ErrNotStarted", err)
	}
	select {
	case m := <-p.reqs:
		t.Fatalf("the worker got a request: %s", m.Data)
	default:
	}
}

// A request that is lost to its conversation (no ack in time) is
// cancelled on the worker, which may still get it, or run it.
func TestLostRequestIsCancelled(t *testing.T) {
	e := newEnv(t, envOpts{ackTimeout: time.Millisecond})
	p := newPeer(t, e, "p", "i1")
	cancels := make(chan *nats.Msg, 4)
	sub, err := p.nc.ChanSubscribe(protocol.CancelSubject("p"), cancels)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := p.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "worker p", func() bool { return slices.Contains(e.live(t), "p") })
	ws, _ := e.t.Workers(t.Context(), channel, engine.ActivityRequest{})
	conv, err := e.t.Open(t.Context(), "wf", channel, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if err := conv.Link(t.Context(), ws[0]); err != nil {
		t.Fatal(err)
	}
	if err := conv.Send(t.Context(), engine.DispatchRequest{ConversationID: "c1", Attempt: 1, Request: request("wf")}); err != nil {
		t.Fatal(err)
	}
	ev, err := conv.Receive(t.Context())
	if err != nil || ev.Kind != engine.EventWorkerExited {
		t.Fatalf("receive: %+v, %v", ev, err)
	}
	m := wait(t, "a cancel", cancels)
	var c protocol.Cancel
	if err := protocol.DecodeMsg(m, &c); err != nil {
		t.Fatal(err)
	}
	if c.ConversationID != "c1" || c.Attempt != 1 || c.Instance != "i1" {
		t.Fatalf("cancel %+v", c)
	}
	if s := e.t.Stats(); s.AckTimeouts != 1 || s.Cancels != 1 {
		t.Fatalf("stats %+v", s)
	}
	// Closing the conversation sends no second cancel.
	if err := conv.Close(); err != nil {
		t.Fatal(err)
	}
}

// A deregistered worker is forgotten (the transport does not keep every
// worker process it saw): at once when it exits with nothing in flight,
// or after its grace, once its last activity on this node ends.
func TestDeregisteredWorkerIsForgotten(t *testing.T) {
	e := newEnv(t, envOpts{reconnectGrace: time.Hour})
	// Exits with nothing in flight: forgotten at its exit.
	k := &killable{}
	p := &peer{t: t, nc: connect(t, e.b, nats.SetCustomDialer(k), nats.NoReconnect())}
	p.send(protocol.SubjectRegister, p.registration("a", "i1"))
	e.waitFor(t, "worker a", func() bool { return slices.Contains(e.live(t), "a") })
	exited := remote.Exited(e.t, "a")
	p.send(protocol.SubjectDeregister, &protocol.Deregistration{Version: 1, WorkerID: "a", Instance: "i1"})
	e.waitFor(t, "worker a to leave", func() bool { return !slices.Contains(e.t.Members(channel), "a") })
	if !remote.Known(e.t, "a") {
		t.Fatal("worker a forgotten before its exit or grace")
	}
	k.kill()
	wait(t, "worker a to exit", exited)
	if remote.Known(e.t, "a") {
		t.Fatal("worker a, deregistered and exited, is still held")
	}

	// Its grace passes with an activity in flight: forgotten when that ends.
	q := newPeer(t, e, "p", "i2")
	conv, reply, r := sentRequest(t, e, q)
	q.send(protocol.SubjectDeregister, &protocol.Deregistration{Version: 1, WorkerID: "p", Instance: "i2"})
	e.waitFor(t, "worker p to leave", func() bool { return len(e.t.Members(channel)) == 0 })
	if !remote.EndLeftGrace(e.t, "p") || !remote.Known(e.t, "p") {
		t.Fatal("worker p forgotten with an activity in flight")
	}
	q.send(reply, &protocol.Response{Version: 1, WorkerID: "p", ConversationID: r.ConversationID, Attempt: r.Attempt,
		Result: protocol.ResultOf(engine.Completed(engine.Payload{})), State: state(2, 0)})
	if ev, err := conv.Receive(t.Context()); err != nil || ev.Kind != engine.EventResponse {
		t.Fatalf("receive: %+v, %v", ev, err)
	}
	if remote.Known(e.t, "p") {
		t.Fatal("worker p, deregistered, grace over, nothing in flight, is still held")
	}
}

// Heartbeat fallback: a new instance that registers with the id of a
// worker still draining an activity is refused until that one is done, so
// the draining one's heartbeats keep it alive and its activity runs once.
func TestReplacementWaitsForTheDrainingInstance(t *testing.T) {
	// The timeout is 40 heartbeats: a worker goroutine starved of CPU
	// for 100 ms under a loaded test run was once declared gone, which is
	// not what this test is about.
	const heartbeat, timeout = 10 * time.Millisecond, 400 * time.Millisecond
	e := newEnv(t, envOpts{noAdvisories: true, heartbeatTimeout: timeout})
	var runs atomic.Int32
	started, release := make(chan struct{}, 4), make(chan struct{})
	slow := func(ctx context.Context, req engine.ActivityRequest) (engine.ActivityResult, error) {
		if runs.Add(1) > 1 {
			return engine.Failed("ran twice"), nil
		}
		started <- struct{}{}
		<-release
		return engine.Completed(req.Input), nil
	}
	opts := worker.Options{ID: "a", Heartbeat: heartbeat}
	old := e.runWorker(t, opts, slow)
	e.waitFor(t, "a", func() bool { return slices.Contains(e.live(t), "a") })
	done := make(chan error, 1)
	go func() { _, err := e.d.Dispatch(context.Background(), ns, request("wf-1")); done <- err }()
	wait(t, "the activity to start", started)
	old.Drain()
	e.waitFor(t, "a to leave", func() bool { return !slices.Contains(e.live(t), "a") })
	e.runWorker(t, opts, slow) // a new instance: refused while old drains
	poll(t, "the replacement to be refused", func() bool { return e.t.Stats().DuplicateRegistrations == 1 })
	// At least twice the timeout's worth of the old instance's heartbeats
	// (both instances publish theirs: four timeouts' worth in all).
	obs := connect(t, e.b)
	var beats atomic.Int32
	sub, err := obs.Subscribe(protocol.SubjectPrefix+".workers.*", func(m *nats.Msg) {
		var st protocol.Status
		if protocol.DecodeMsg(m, &st) == nil && st.WorkerID == "a" {
			beats.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	poll(t, "heartbeats", func() bool { return beats.Load() >= int32(4*timeout/heartbeat) })
	close(release)
	if err := wait(t, "the dispatch", done); err != nil {
		t.Fatalf("dispatch: %v; stats %+v", err, e.t.Stats())
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("the activity ran %d times; stats %+v", n, e.t.Stats())
	}
	if s := e.t.Stats(); s.HeartbeatExits != 0 {
		t.Fatalf("stats %+v, want no heartbeat exit", s)
	}
}

// poll waits until cond holds, looking every millisecond, for what no
// signal announces (a refusal, a count of messages); the guard only fails
// a hang.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A worker that registers on a channel the node was not given is
// accepted, and the node says so once: a typo in a worker's --channel
// shows in the node's log rather than as a worker that never gets work.
func TestRegistrationOnUnservedChannelIsLogged(t *testing.T) {
	logs := newLogSignal("worker registered")
	e := newEnv(t, envOpts{logger: slog.New(logs)})
	e.runWorker(t, worker.Options{ID: "a"}, echo)
	if msg := wait(t, "worker a to register", logs.c); strings.Contains(msg, "does not serve") {
		t.Fatalf("a worker on the served channel logged %q", msg)
	}
	e.runWorker(t, worker.Options{ID: "b", Channels: []string{ns + "/typo"}}, echo)
	got := map[string]bool{}
	for len(got) < 2 {
		got[wait(t, "worker b's registration lines", logs.c)] = true
	}
	if !slices.ContainsFunc(slices.Collect(maps.Keys(got)), func(m string) bool { return strings.Contains(m, "does not serve") }) {
		t.Fatalf("worker b on an unserved channel: lines %v, none says the channel is not served", got)
	}
}
