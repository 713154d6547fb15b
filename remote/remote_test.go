package remote_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/aion-dispatch/dispatch/broker"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/remote"
	"github.com/aion-dispatch/dispatch/router"
	"github.com/aion-dispatch/dispatch/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds a wait that should end soon; it only turns a hang into a
// failure.
const guard = 10 * time.Second

const ns, queue = "prod", "email"

var channel = func() engine.ChannelName { c, _ := engine.DispatchChannel(ns, queue); return c }()

// env is an embedded broker, a transport over it and a dispatcher.
type env struct {
	b  *broker.Broker
	nc *nats.Conn // the transport's
	t  *remote.Transport
	d  *engine.Dispatcher
}

type envOpts struct {
	noAdvisories     bool
	heartbeatTimeout time.Duration
	ackTimeout       time.Duration
	maxMsg           int
	reconnectGrace   time.Duration
	maxPending       int
	logger           *slog.Logger
	clock            remote.Clock
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	b, err := broker.Start(t.Context(), broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	nc := connect(t, b)
	opts := remote.Options{Conn: nc, Channels: []engine.ChannelName{channel}, HeartbeatTimeout: o.heartbeatTimeout, AckTimeout: o.ackTimeout,
		MaxMessageSize: o.maxMsg, ReconnectGrace: o.reconnectGrace, MaxPending: o.maxPending, Logger: o.logger,
		Clock: o.clock}
	if !o.noAdvisories {
		sys, err := b.ConnectSystem()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sys.Close)
		opts.Advisories = sys
	}
	tr, err := remote.New(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close(context.Background()) })
	d, err := engine.NewDispatcher(engine.Options{Pool: tr, Conversations: tr, Capacity: tr,
		Router: router.NewNative("least-loaded", router.LeastLoaded)})
	if err != nil {
		t.Fatal(err)
	}
	return &env{b: b, nc: nc, t: tr, d: d}
}

func connect(t *testing.T, b *broker.Broker, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := b.Connect(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// waitFor waits, on the transport's capacity signal, until cond holds.
func (e *env) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		changed := e.t.CapacityChanged(channel)
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (e *env) live(t *testing.T) []string {
	ws, err := e.t.Workers(context.Background(), channel, engine.ActivityRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(ws))
	for i, w := range ws {
		ids[i] = w.ID()
	}
	return ids
}

// killable is a worker connection that the test can cut as a crash does:
// the TCP connection closes with no goodbye, and no reconnect follows.
type killable struct {
	mu   sync.Mutex
	conn net.Conn
}

func (k *killable) Dial(network, address string) (net.Conn, error) {
	c, err := net.Dial(network, address)
	k.mu.Lock()
	k.conn = c
	k.mu.Unlock()
	return c, err
}

func (k *killable) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	_ = k.conn.Close()
}

// startWorker runs a worker on its own connection until the test ends, and
// waits until the transport sees it.
func (e *env) startWorker(t *testing.T, opts worker.Options, h worker.Handler) *killable {
	t.Helper()
	k := &killable{}
	runOn(t, connect(t, e.b, nats.SetCustomDialer(k), nats.NoReconnect()), opts, h)
	e.waitFor(t, "worker "+opts.ID+" to register", func() bool { return slices.Contains(e.live(t), opts.ID) })
	return k
}

func echo(_ context.Context, req engine.ActivityRequest) (engine.ActivityResult, error) {
	return engine.Completed(req.Input), nil
}

func request(wf string) engine.ActivityRequest {
	return engine.ActivityRequest{WorkflowID: wf, ActivityType: "send", TaskQueue: queue,
		Input: engine.Payload{ContentType: "application/json", Data: []byte(`{"n":1}`)}}
}

func TestDispatchThroughAWorker(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.startWorker(t, worker.Options{ID: "w1", MaxInFlight: 2, Tags: []string{"eu"}}, echo)
	ws, _ := e.t.Workers(t.Context(), channel, engine.ActivityRequest{})
	if len(ws) != 1 || ws[0].State.MaxInFlight != 2 || !ws[0].State.HasAffinity("eu") {
		t.Fatalf("snapshot %+v", ws)
	}
	res, err := e.d.Dispatch(t.Context(), ns, request("wf-1"))
	if err != nil || string(res.Output.Data) != `{"n":1}` {
		t.Fatalf("dispatch: %+v, %v", res, err)
	}
	_, err = e.d.Dispatch(t.Context(), ns, engine.ActivityRequest{WorkflowID: "wf-2", ActivityType: "x", TaskQueue: queue})
	if err != nil {
		t.Fatal(err)
	}
	fail := func(context.Context, engine.ActivityRequest) (engine.ActivityResult, error) {
		return engine.ActivityResult{}, errors.New("no such mailbox")
	}
	e2 := newEnv(t, envOpts{})
	e2.startWorker(t, worker.Options{ID: "w2"}, fail)
	_, err = e2.d.Dispatch(t.Context(), ns, request("wf-3"))
	if !errors.Is(err, engine.ErrActivityFailed) || !strings.Contains(err.Error(), "no such mailbox") {
		t.Fatalf("failed activity: %v", err)
	}
	if s := e.t.Stats(); s.Refused() != 0 || s.Responses != 2 || s.Accepted != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// A worker whose connection dies (no goodbye) exits through the
// disconnect advisory: the activity it held goes to the other worker.
func TestExitIsTheDisconnectAdvisory(t *testing.T) {
	e := newEnv(t, envOpts{})
	started := make(chan struct{})
	var once sync.Once
	hang := func(ctx context.Context, _ engine.ActivityRequest) (engine.ActivityResult, error) {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return engine.ActivityResult{}, ctx.Err()
	}
	k := e.startWorker(t, worker.Options{ID: "a"}, hang)
	type out struct {
		res engine.ActivityResult
		err error
	}
	done := make(chan out, 1)
	go func() {
		res, err := e.d.Dispatch(context.Background(), ns, request("wf-1"))
		done <- out{res, err}
	}()
	select {
	case <-started:
	case <-time.After(guard):
		t.Fatal("worker a did not start the activity")
	}
	e.startWorker(t, worker.Options{ID: "b"}, echo)
	k.kill()
	select {
	case o := <-done:
		if o.err != nil || o.res.Status != engine.StatusCompleted {
			t.Fatalf("dispatch: %+v, %v", o.res, o.err)
		}
	case <-time.After(guard):
		t.Fatal("the exit of worker a was not observed")
	}
	if s := e.t.Stats(); s.Exits != 1 {
		t.Fatalf("exits %d, want 1", s.Exits)
	}
	if got := e.t.Members(channel); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("members %v, want a (exited) and b", got)
	}
	if got := e.live(t); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("live %v, want b", got)
	}
}

// Without advisories, a worker with a heartbeat that goes silent is
// deemed gone after the timeout.
func TestHeartbeatFallback(t *testing.T) {
	e := newEnv(t, envOpts{noAdvisories: true, heartbeatTimeout: 200 * time.Millisecond})
	started := make(chan struct{})
	var once sync.Once
	hang := func(ctx context.Context, _ engine.ActivityRequest) (engine.ActivityResult, error) {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return engine.ActivityResult{}, ctx.Err()
	}
	k := e.startWorker(t, worker.Options{ID: "a", Heartbeat: 20 * time.Millisecond}, hang)
	e.startWorker(t, worker.Options{ID: "b", Heartbeat: 20 * time.Millisecond}, echo)
	done := make(chan error, 1)
	go func() {
		// Worker a is first and least loaded: it takes the activity.
		_, err := e.d.Dispatch(context.Background(), ns, request("wf-1"))
		done <- err
	}()
	select {
	case <-started:
	case <-time.After(guard):
		t.Fatal("worker a did not start the activity")
	}
	k.kill()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(guard):
		t.Fatal("the silence of worker a was not noticed")
	}
	if s := e.t.Stats(); s.HeartbeatExits != 1 || s.Exits != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A drained worker deregisters (it leaves the membership), finishes what
// it has, and Run returns nil.
func TestWorkerDrain(t *testing.T) {
	e := newEnv(t, envOpts{})
	nc := connect(t, e.b)
	release := make(chan struct{})
	started := make(chan struct{})
	w, err := worker.New(nc, worker.Options{ID: "d", Channels: []string{"prod/email"}}, func(ctx context.Context, req engine.ActivityRequest) (engine.ActivityResult, error) {
		close(started)
		<-release
		return engine.Completed(req.Input), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- w.Run(context.Background()) }()
	e.waitFor(t, "worker d", func() bool { return slices.Contains(e.live(t), "d") })
	done := make(chan error, 1)
	go func() {
		_, err := e.d.Dispatch(context.Background(), ns, request("wf-1"))
		done <- err
	}()
	<-started
	w.Drain()
	e.waitFor(t, "worker d to leave", func() bool { return len(e.t.Members(channel)) == 0 })
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the activity of a draining worker: %v", err)
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(guard):
		t.Fatal("Run did not return after the drain")
	}
	if s := e.t.Stats(); s.Deregistrations != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// peer is a worker written against the protocol by hand, so that a test
// says exactly what goes on the wire.
type peer struct {
	t    *testing.T
	nc   *nats.Conn
	reqs chan *nats.Msg
}

func newPeer(t *testing.T, e *env, id, instance string) *peer {
	t.Helper()
	p := &peer{t: t, nc: connect(t, e.b), reqs: make(chan *nats.Msg, 16)}
	sub, err := p.nc.ChanSubscribe(protocol.RequestSubject(id), p.reqs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	p.send(protocol.SubjectRegister, p.registration(id, instance))
	return p
}

func (p *peer) registration(id, instance string) *protocol.Registration {
	cid, err := p.nc.GetClientID()
	if err != nil {
		p.t.Fatal(err)
	}
	return &protocol.Registration{Version: 1, WorkerID: id, Instance: instance, Channels: []string{ns + "/" + queue}, MaxInFlight: 1,
		Connection: &protocol.Connection{ServerID: p.nc.ConnectedServerId(), ClientID: cid}, State: &protocol.State{}}
}

func (p *peer) send(subject string, m protocol.Message) {
	p.t.Helper()
	msg, err := protocol.NewMsg(subject, m)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.nc.PublishMsg(msg); err != nil {
		p.t.Fatal(err)
	}
}

func (p *peer) raw(subject, contentType string, body []byte) {
	p.t.Helper()
	msg := nats.NewMsg(subject)
	msg.Header.Set(protocol.HeaderContentType, contentType)
	msg.Data = body
	if err := p.nc.PublishMsg(msg); err != nil {
		p.t.Fatal(err)
	}
}

func (p *peer) request() (*nats.Msg, protocol.Request) {
	p.t.Helper()
	select {
	case m := <-p.reqs:
		var r protocol.Request
		if err := protocol.DecodeMsg(m, &r); err != nil {
			p.t.Fatal(err)
		}
		return m, r
	case <-time.After(guard):
		p.t.Fatal("no request")
	}
	panic("unreachable")
}

func state(seq uint64, inFlight int) *protocol.State {
	return &protocol.State{Seq: seq, InFlight: inFlight}
}

// A rejected ack sends the activity back to the backlog (not an exit);
// the worker is seen full until it reports again. Bad input is refused,
// logged and counted, and loses nothing.
func TestRejectedAckAndBadInput(t *testing.T) {
	e := newEnv(t, envOpts{maxMsg: 4096})
	p := newPeer(t, e, "p", "i1")
	e.waitFor(t, "worker p", func() bool { return slices.Contains(e.live(t), "p") })
	// Another process takes the live id: refused. A registration after it
	// on the same connection tells when it has been handled.
	other := newPeer(t, e, "p", "i2")
	other.send(protocol.SubjectRegister, other.registration("q", "i3"))
	e.waitFor(t, "worker q", func() bool { return slices.Contains(e.live(t), "q") })
	other.send(protocol.SubjectDeregister, &protocol.Deregistration{Version: 1, WorkerID: "q", Instance: "i3"})
	e.waitFor(t, "worker q to leave", func() bool { return !slices.Contains(e.live(t), "q") })

	done := make(chan error, 1)
	go func() {
		res, err := e.d.Dispatch(context.Background(), ns, request("wf-1"))
		if err == nil && string(res.Output.Data) != "ok" {
			err = errors.New("wrong result " + string(res.Output.Data))
		}
		done <- err
	}()
	m1, r1 := p.request()
	p.send(m1.Reply, &protocol.Ack{Version: 1, WorkerID: "p", ConversationID: r1.ConversationID, Attempt: r1.Attempt,
		Status: protocol.AckRejected, Reason: "busy", State: state(1, 0)}) // its load says free: the rejection alone blocks it
	// Seen full: nothing is sent until the worker reports a free slot.
	e.waitFor(t, "the rejection", func() bool { return e.t.Stats().Rejected == 1 })
	if ws, _ := e.t.Workers(t.Context(), channel, engine.ActivityRequest{}); len(ws) != 1 || ws[0].State.HasCapacity() {
		t.Fatalf("after the rejection, worker p is seen as %+v, want full", ws)
	}
	select {
	case m := <-p.reqs:
		t.Fatalf("a request to a worker seen full: %s", m.Data)
	default:
	}
	p.send(protocol.SubjectStatus, &protocol.Status{Version: 1, WorkerID: "p", Instance: "i1", State: state(2, 0)})
	m2, r2 := p.request()
	if r2.ConversationID != r1.ConversationID || r2.Attempt != 2 {
		t.Fatalf("second request %+v after %+v", r2, r1)
	}
	p.send(m2.Reply, &protocol.Ack{Version: 1, WorkerID: "p", ConversationID: r2.ConversationID, Attempt: 2,
		Status: protocol.AckAccepted, State: state(3, 1)})
	// Bad input, each refused where it is received.
	p.raw(m2.Reply, "text/plain", []byte("hello"))
	p.raw(m2.Reply, protocol.ContentTypeResponse, []byte(`{"version":1,`))
	p.raw(m2.Reply, protocol.ContentTypeResponse, []byte(`{"version":1,"surprise":true}`))
	p.raw(m2.Reply, protocol.ContentTypeResponse, []byte(`{"`+strings.Repeat("x", 5000)+`":1}`))
	p.send(protocol.InboxSubject(e.t.NodeID())+".nope", &protocol.Response{Version: 1, WorkerID: "p", ConversationID: "nope", Attempt: 1,
		Result: protocol.ResultOf(engine.Completed(engine.Payload{})), State: state(0, 0)})
	p.send(m2.Reply, &protocol.Response{Version: 1, WorkerID: "p", ConversationID: r2.ConversationID, Attempt: 1,
		Result: protocol.ResultOf(engine.Completed(engine.Payload{})), State: state(0, 0)})
	resp := &protocol.Response{Version: 1, WorkerID: "p", ConversationID: r2.ConversationID, Attempt: 2,
		Result: protocol.ResultOf(engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte("ok")})), State: state(4, 0)}
	p.send(m2.Reply, resp)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(guard):
		t.Fatal("dispatch did not end")
	}
	// After the close, the same response again; a second dispatch's
	// answer, behind it in the same inbox, says when it was handled.
	p.send(m2.Reply, resp)
	go func() {
		_, err := e.d.Dispatch(context.Background(), ns, request("wf-2"))
		done <- err
	}()
	m3, r3 := p.request()
	p.send(m3.Reply, &protocol.Ack{Version: 1, WorkerID: "p", ConversationID: r3.ConversationID, Attempt: 1,
		Status: protocol.AckAccepted, State: state(5, 1)})
	p.send(m3.Reply, &protocol.Response{Version: 1, WorkerID: "p", ConversationID: r3.ConversationID, Attempt: 1,
		Result: protocol.ResultOf(engine.Failed("nope")), State: state(6, 0)})
	if err := <-done; !errors.Is(err, engine.ErrActivityFailed) {
		t.Fatalf("second dispatch: %v", err)
	}
	got := e.t.Stats()
	want := remote.Stats{Registrations: 2, Deregistrations: 1, Requests: 3, Accepted: 2, Rejected: 1, Responses: 2,
		WrongContentType: 1, Malformed: 2, TooLarge: 1, UnknownConversation: 1, Stale: 1, AfterClose: 1, DuplicateRegistrations: 1}
	if got != want {
		t.Fatalf("stats\n got %+v\nwant %+v", got, want)
	}
}

// A worker that rejected is seen full, even when its load says free,
// until it reports a newer state: Link fails with ErrWorkerFull.
func TestRejectionBlocksUntilReport(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := newPeer(t, e, "p", "i1")
	e.waitFor(t, "worker p", func() bool { return slices.Contains(e.live(t), "p") })
	ws, _ := e.t.Workers(t.Context(), channel, engine.ActivityRequest{})
	conv, err := e.t.Open(t.Context(), "wf", channel, "c1")
	if err != nil {
		t.Fatal(err)
	}
	defer conv.Close()
	if err := conv.Link(t.Context(), ws[0]); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		sent <- conv.Send(context.Background(), engine.DispatchRequest{ConversationID: "c1", Attempt: 1, Request: request("wf")})
	}()
	m, r := p.request()
	p.send(m.Reply, &protocol.Ack{Version: 1, WorkerID: "p", ConversationID: r.ConversationID, Attempt: 1,
		Status: protocol.AckRejected, Reason: "busy", State: state(1, 0)})
	if err := <-sent; !errors.Is(err, engine.ErrNotStarted) || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("send: %v", err)
	}
	if err := conv.Link(t.Context(), ws[0]); !errors.Is(err, engine.ErrWorkerFull) {
		t.Fatalf("link after a rejection: %v, want ErrWorkerFull", err)
	}
	p.send(protocol.SubjectStatus, &protocol.Status{Version: 1, WorkerID: "p", Instance: "i1", State: state(2, 0)})
	e.waitFor(t, "worker p free", func() bool {
		ws, _ := e.t.Workers(t.Context(), channel, engine.ActivityRequest{})
		return len(ws) == 1 && ws[0].State.HasCapacity()
	})
	if err := conv.Link(t.Context(), ws[0]); err != nil {
		t.Fatalf("link after a newer report: %v", err)
	}
}
