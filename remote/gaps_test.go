package remote_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/remote"
	"github.com/aion-dispatch/dispatch/worker"
)

// A worker that exited and does not come back within the reconnect grace
// leaves its channels; the capacity signal tells the backlog.
func TestExitedWorkerLeavesAfterTheGrace(t *testing.T) {
	e := newEnv(t, envOpts{reconnectGrace: 20 * time.Millisecond})
	k := e.startWorker(t, worker.Options{ID: "a"}, echo)
	e.startWorker(t, worker.Options{ID: "b"}, echo)
	signal := e.t.CapacityChanged(channel)
	k.kill()
	e.waitFor(t, "worker a to leave", func() bool { return slices.Equal(e.t.Members(channel), []string{"b"}) })
	select {
	case <-signal:
	default:
		t.Fatal("no capacity change")
	}
	if s := e.t.Stats(); s.Exits != 1 || s.Forgotten != 1 {
		t.Fatalf("stats %+v, want one exit, one forgotten", s)
	}
	// The id is free: a new worker a registers at the end.
	e.startWorker(t, worker.Options{ID: "a"}, echo)
	if got := e.t.Members(channel); !slices.Equal(got, []string{"b", "a"}) {
		t.Fatalf("members %v, want [b a]", got)
	}
}

// A worker whose connection drops and comes back within the grace keeps
// its id and its place, and takes work again.
func TestReconnectedWorkerKeepsItsPlace(t *testing.T) {
	e := newEnv(t, envOpts{})
	k := &killable{}
	nc, _ := runReconnecting(t, e, k)
	e.waitFor(t, "worker a", func() bool { return slices.Contains(e.live(t), "a") })
	e.startWorker(t, worker.Options{ID: "b"}, echo)
	before := e.t.Stats()
	k.kill()
	// The registration again fires the capacity signal that waitFor waits
	// on; the client's reconnect count is its own state, which no signal
	// follows, so it is polled after (it was in the condition, and a
	// signal that came first left the wait to its guard under load).
	e.waitFor(t, "worker a back", func() bool {
		s := e.t.Stats()
		return s.Registrations+s.Reregistrations > before.Registrations+before.Reregistrations &&
			slices.Equal(e.live(t), []string{"a", "b"})
	})
	for deadline := time.Now().Add(guard); nc.Stats().Reconnects < 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("worker a re-registered without its connection reconnecting: %+v", nc.Stats())
		}
	}
	if got := e.t.Members(channel); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("members %v, want [a b]", got)
	}
	if _, err := e.d.Dispatch(t.Context(), ns, request("wf-1")); err != nil {
		t.Fatal(err)
	}
	if s := e.t.Stats(); s.Forgotten != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A worker whose connection drops while its first registration is being
// flushed does not give up: nats.go reconnects, and the worker registers
// again on the new connection. (Run used to return the flush's error,
// leaving a connected client with no worker behind it: under a loaded test
// run, TestReconnectedWorkerKeepsItsPlace's kill sometimes landed there.)
func TestWorkerCutWhileRegisteringRegistersAgain(t *testing.T) {
	e := newEnv(t, envOpts{})
	d := &cutAfterRegister{}
	nc, ran := runReconnecting(t, e, d)
	// The only registration that reaches the node is the one on the new
	// connection. Both outcomes are announced: the capacity signal for the
	// registration, the worker's return on ran.
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		changed := e.t.CapacityChanged(channel)
		if slices.Contains(e.live(t), "a") {
			break
		}
		select {
		case err := <-ran:
			ran <- err
			t.Fatalf("the worker stopped: %v", err)
		case <-changed:
		case <-deadline.C:
			t.Fatalf("worker a did not register; connection %v %+v", nc.Status(), nc.Stats())
		}
	}
	if !d.cut.Load() || nc.Stats().Reconnects < 1 {
		t.Fatalf("the connection was not cut at the registration: %+v", nc.Stats())
	}
	if _, err := e.d.Dispatch(t.Context(), ns, request("wf-1")); err != nil {
		t.Fatal(err)
	}
}

// runReconnecting runs worker a on a connection of its own through dialer,
// which reconnects at once for ever, until the test ends; ran gets what
// Run returned if it returns before (and is given it back, for the end).
func runReconnecting(t *testing.T, e *env, dialer nats.CustomDialer) (*nats.Conn, chan error) {
	t.Helper()
	nc := connect(t, e.b, nats.SetCustomDialer(dialer), nats.ReconnectWait(time.Millisecond), nats.MaxReconnects(-1))
	w, err := worker.New(nc, worker.Options{ID: "a", Channels: []string{ns + "/" + queue}}, echo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })
	return nc, ran
}

// cutAfterRegister dials plain connections, and closes the first one
// when the worker's first registration is written to it, instead of
// writing it: the flush behind it is never answered.
type cutAfterRegister struct {
	cut atomic.Bool
}

func (d *cutAfterRegister) Dial(network, address string) (net.Conn, error) {
	c, err := net.Dial(network, address)
	if err != nil || d.cut.Load() {
		return c, err
	}
	return &cutConn{Conn: c, d: d}, nil
}

type cutConn struct {
	net.Conn
	d *cutAfterRegister
}

func (c *cutConn) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(protocol.SubjectRegister)) && c.d.cut.CompareAndSwap(false, true) {
		_ = c.Conn.Close() // the registration never leaves
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

// gated dials only while its gate is open: a connection cut while it is
// closed stays away until the test opens it.
type gated struct {
	killable
	mu   sync.Mutex
	open chan struct{}
}

func (g *gated) Dial(network, address string) (net.Conn, error) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if open != nil {
		<-open
	}
	return g.killable.Dial(network, address)
}

// The dispatch node says hello again after its own reconnect, so that a
// worker that registered while it was away registers again with it.
func TestHelloAfterReconnect(t *testing.T) {
	e := newEnv(t, envOpts{}) // only for its broker
	g := &gated{}
	nc := connect(t, e.b, nats.SetCustomDialer(g), nats.ReconnectWait(time.Millisecond), nats.MaxReconnects(-1))
	tr, err := remote.New(t.Context(), remote.Options{Conn: nc, Channels: []engine.ChannelName{channel}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tr.Close(context.Background()) }()
	// An observer sees the worker's registration, which the node misses.
	obs := connect(t, e.b)
	regs := make(chan *nats.Msg, 16)
	sub, err := obs.ChanSubscribe(protocol.SubjectRegister, regs)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}
	open := make(chan struct{})
	g.mu.Lock()
	g.open = open
	g.mu.Unlock()
	reconnected := nc.StatusChanged(nats.CONNECTED)
	defer nc.RemoveStatusListener(reconnected)
	g.kill()
	e.startWorker2(t, worker.Options{ID: "w"})
	select {
	case <-regs:
	case <-time.After(guard):
		t.Fatal("no registration")
	}
	close(open)
	select {
	case <-reconnected:
	case <-time.After(guard):
		t.Fatal("the node did not reconnect")
	}
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		changed := tr.CapacityChanged(channel)
		if slices.Equal(tr.Members(channel), []string{"w"}) {
			break
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("the worker did not register again after the node reconnected (stats %+v)", tr.Stats())
		}
	}
	if s := tr.Stats(); s.Hellos != 1 {
		t.Fatalf("stats %+v, want one hello after the reconnect", s)
	}
}

// startWorker2 runs a worker until the test ends, without waiting for
// the env's transport to see it.
func (e *env) startWorker2(t *testing.T, opts worker.Options) {
	t.Helper()
	nc := connect(t, e.b)
	opts.Channels = []string{ns + "/" + queue}
	w, err := worker.New(nc, opts, echo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// A slow consumer on a subscription of the transport reaches the error
// handler it gives: logged, counted, passed on.
func TestSlowConsumerIsReported(t *testing.T) {
	e := newEnv(t, envOpts{maxPending: 2})
	seen := make(chan error, 16)
	e.nc.SetErrorHandler(e.t.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case seen <- err:
		default:
		}
	}))
	pub := connect(t, e.b)
	release := remote.Hold(e.t)
	for range 10 {
		msg, err := protocol.NewMsg(protocol.SubjectStatus, &protocol.Status{Version: 1, WorkerID: "x", Instance: "i", State: &protocol.State{}})
		if err != nil {
			release()
			t.Fatal(err)
		}
		if err := pub.PublishMsg(msg); err != nil {
			release()
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		release()
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-seen:
	case <-time.After(guard):
	}
	release()
	if !errors.Is(err, nats.ErrSlowConsumer) {
		t.Fatalf("error handler saw %v, want a slow consumer", err)
	}
	if s := e.t.Stats(); s.SlowConsumers == 0 {
		t.Fatalf("stats %+v, want the slow consumer counted", s)
	}
}

// A worker does not answer an activity whose start-to-close passed on
// its side: dispatch times it out itself, and a Failed answer to the
// handler's cancellation must not overtake that timeout.
func TestWorkerDoesNotAnswerAfterItsStartToClose(t *testing.T) {
	e := newEnv(t, envOpts{}) // for its broker
	returned := make(chan struct{})
	nc := connect(t, e.b)
	w, err := worker.New(nc, worker.Options{ID: "s", Channels: []string{ns + "/" + queue}},
		func(ctx context.Context, _ engine.ActivityRequest) (engine.ActivityResult, error) {
			<-ctx.Done()
			close(returned)
			return engine.Failed("cancelled"), nil
		})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- w.Run(context.Background()) }()
	e.waitFor(t, "worker s", func() bool { return slices.Contains(e.live(t), "s") })
	tc := connect(t, e.b)
	replies := make(chan *nats.Msg, 16)
	sub, err := tc.ChanSubscribe("test.reply", replies)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	act := request("wf-1")
	act.StartToClose = 10 * time.Millisecond
	msg, err := protocol.NewMsg(protocol.RequestSubject("s"), &protocol.Request{Version: 1, WorkerID: "s", Instance: w.Instance(), ConversationID: "c1", Attempt: 1,
		Activity: protocol.ActivityOf(act)})
	if err != nil {
		t.Fatal(err)
	}
	msg.Reply = "test.reply"
	if err := tc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-returned:
	case <-time.After(guard):
		t.Fatal("the handler was not cancelled at its start-to-close")
	}
	// Run returns once every job is done, after a flush; the observer's
	// flush then has every message the worker sent.
	w.Drain()
	select {
	case <-ran:
	case <-time.After(guard):
		t.Fatal("the drain did not end")
	}
	if err := tc.Flush(); err != nil {
		t.Fatal(err)
	}
	for len(replies) > 0 {
		m := <-replies
		if ct := protocol.ContentTypeOf(m); ct != protocol.ContentTypeAck {
			t.Fatalf("the worker sent %s %s after the start-to-close", ct, m.Data)
		}
	}
}

// A worker whose connection closes while it drains cancels its handlers
// and returns, however long its drain timeout: no answer can leave.
func TestDrainEndsWhenTheConnectionCloses(t *testing.T) {
	e := newEnv(t, envOpts{})
	k := &killable{}
	nc := connect(t, e.b, nats.SetCustomDialer(k), nats.NoReconnect())
	started := make(chan struct{})
	w, err := worker.New(nc, worker.Options{ID: "d", Channels: []string{ns + "/" + queue}},
		func(ctx context.Context, _ engine.ActivityRequest) (engine.ActivityResult, error) {
			close(started)
			<-ctx.Done()
			return engine.Failed("cancelled"), nil
		})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- w.Run(context.Background()) }()
	e.waitFor(t, "worker d", func() bool { return slices.Contains(e.live(t), "d") })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := e.d.Dispatch(ctx, ns, request("wf-1"))
		done <- err
	}()
	select {
	case <-started:
	case <-time.After(guard):
		t.Fatal("no activity started")
	}
	w.Drain()
	e.waitFor(t, "worker d to deregister", func() bool { return len(e.t.Members(channel)) == 0 })
	k.kill()
	select {
	case <-ran:
	case <-time.After(guard):
		t.Fatal("Run did not return after its connection closed during the drain")
	}
	cancel()
	<-done
}
