package remote_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/remote"
	"github.com/aion-dispatch/dispatch/transporttest"
	"github.com/aion-dispatch/dispatch/worker"
)

// The NATS transport passes the transports' conformance suite: workers are
// the Go worker library on their own connections to an embedded broker,
// killed by cutting their TCP connection (no goodbye), stopped by a drain.
func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) transporttest.Harness {
		return &remoteHarness{e: newEnv(t, envOpts{})}
	})
}

type remoteHarness struct{ e *env }

func (h *remoteHarness) Transport() transporttest.Transport { return h.e.t }
func (h *remoteHarness) Channel() engine.ChannelName        { return channel }

func (h *remoteHarness) StartWorker(t *testing.T, cfg transporttest.WorkerConfig) transporttest.Worker {
	t.Helper()
	k := &killable{}
	nc := connect(t, h.e.b, nats.SetCustomDialer(k), nats.NoReconnect())
	handler := func(ctx context.Context, req engine.ActivityRequest) (engine.ActivityResult, error) {
		return cfg.Handler(ctx, req), nil
	}
	w, err := worker.New(nc, worker.Options{ID: cfg.ID, Channels: []string{ns + "/" + queue}, MaxInFlight: cfg.MaxInFlight}, handler)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }() // ends when ctx ends (a drain) or the connection is cut
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(guard):
			t.Errorf("worker %s did not stop (connection %v)", cfg.ID, nc.Status())
		}
	})
	return &remoteWorker{h: h, id: cfg.ID, k: k, stop: w.Drain}
}

type remoteWorker struct {
	h    *remoteHarness
	id   string
	k    *killable
	stop func()
}

func (w *remoteWorker) ID() string      { return w.id }
func (w *remoteWorker) Stop(*testing.T) { w.stop() }
func (w *remoteWorker) Kill(*testing.T) { w.k.kill() }
func (w *remoteWorker) Leave(t *testing.T) {
	t.Helper()
	if !remote.EndGrace(w.h.e.t, w.id) {
		t.Fatalf("worker %s has not exited", w.id)
	}
}

// StartRejecting starts a worker written against the protocol by hand:
// it rejects its first n requests (reporting a free slot right after
// each, as a worker whose slot another node's request had taken and
// freed), then runs cfg.Handler on one request at a time.
func (h *remoteHarness) StartRejecting(t *testing.T, cfg transporttest.WorkerConfig, n int) transporttest.Worker {
	t.Helper()
	k := &killable{}
	nc := connect(t, h.e.b, nats.SetCustomDialer(k), nats.NoReconnect())
	reqs := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(protocol.RequestSubject(cfg.ID), reqs)
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, nc: nc}
	const instance = "rejecting"
	reg := p.registration(cfg.ID, instance)
	p.send(protocol.SubjectRegister, reg)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // ends when the test ends
		var seq uint64
		st := func(inFlight int) *protocol.State { seq++; return &protocol.State{Seq: seq, InFlight: inFlight} }
		publish := func(subject string, m protocol.Message) {
			if msg, err := protocol.NewMsg(subject, m); err == nil {
				_ = nc.PublishMsg(msg) // fails once the connection is cut: a crash answers nothing
			}
		}
		for {
			var m *nats.Msg
			select {
			case m = <-reqs:
			case <-done:
				return
			}
			var r protocol.Request
			if err := protocol.DecodeMsg(m, &r); err != nil {
				t.Errorf("worker %s: %v", cfg.ID, err)
				continue
			}
			ack := &protocol.Ack{Version: 1, WorkerID: cfg.ID, ConversationID: r.ConversationID, Attempt: r.Attempt}
			if n > 0 {
				n--
				ack.Status, ack.Reason, ack.State = protocol.AckRejected, "full: another node's request", st(0)
				publish(m.Reply, ack)
				publish(protocol.SubjectStatus, &protocol.Status{Version: 1, WorkerID: cfg.ID, Instance: instance, State: st(0)})
				continue
			}
			ack.Status, ack.State = protocol.AckAccepted, st(1)
			publish(m.Reply, ack)
			req, _ := r.Activity.Engine()
			ctx, cancel := context.WithCancel(context.Background())
			go func() { // ends when the handler returns
				select {
				case <-done:
				case <-ctx.Done():
				}
				cancel()
			}()
			res := cfg.Handler(ctx, req)
			cancel()
			publish(m.Reply, &protocol.Response{Version: 1, WorkerID: cfg.ID, ConversationID: r.ConversationID,
				Attempt: r.Attempt, Result: protocol.ResultOf(res), State: st(0)})
		}
	})
	t.Cleanup(func() {
		close(done)
		wg.Wait()
		_ = sub.Unsubscribe()
	})
	return &remoteWorker{h: h, id: cfg.ID, k: k, stop: func() {
		p.send(protocol.SubjectDeregister, &protocol.Deregistration{Version: 1, WorkerID: cfg.ID, Instance: instance, Reason: "stop"})
	}}
}
