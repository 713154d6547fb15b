package local_test

import (
	"context"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/transporttest"
)

// The in-process pool passes the transports' conformance suite.
func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T) transporttest.Harness {
		p := local.NewPool()
		ch := channel(t)
		p.AddChannel(ch)
		t.Cleanup(func() {
			if err := p.Close(context.Background()); err != nil {
				t.Error(err)
			}
		})
		return &localHarness{p: p, ch: ch}
	})
}

type localHarness struct {
	p  *local.Pool
	ch engine.ChannelName
}

func (h *localHarness) Transport() transporttest.Transport { return h.p }
func (h *localHarness) Channel() engine.ChannelName        { return h.ch }

func (h *localHarness) StartWorker(t *testing.T, cfg transporttest.WorkerConfig) transporttest.Worker {
	t.Helper()
	w, err := h.p.Start(h.ch, local.WorkerConfig{ID: cfg.ID, MaxInFlight: cfg.MaxInFlight, Handler: local.Handler(cfg.Handler)})
	if err != nil {
		t.Fatal(err)
	}
	return &localWorker{h: h, w: w}
}

type localWorker struct {
	h *localHarness
	w *local.Worker
}

func (w *localWorker) ID() string { return w.w.ID() }

// Stop takes the worker out of the membership and drains it.
func (w *localWorker) Stop(t *testing.T) {
	if _, ok := w.h.p.Remove(w.h.ch, w.w.ID()); !ok {
		t.Fatalf("worker %s was not a member", w.w.ID())
	}
	w.w.Drain("stopped")
}

// Kill makes the worker exit at once; it stays a member.
func (w *localWorker) Kill(*testing.T) { w.w.Stop("killed") }

// Leave takes the exited worker out of the membership.
func (w *localWorker) Leave(t *testing.T) {
	if _, ok := w.h.p.Remove(w.h.ch, w.w.ID()); !ok {
		t.Fatalf("worker %s was not a member", w.w.ID())
	}
}
