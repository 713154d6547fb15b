// Package transporttest is one conformance suite for every transport that
// carries dispatch conversations to workers: the in-process pool of
// package local and the NATS transport of package remote run the same
// cases, each through a real [engine.Dispatcher], as watermill runs one
// pub/sub suite against every backend.
//
// A transport's tests call [Run] with a constructor of a [Harness]: the
// engine-facing side of the transport for one channel, and a way to start
// workers on it, stop them gracefully and make them exit abruptly. Run
// builds a dispatcher over the harness's transport for each case, with a
// router of its own (the first candidate in pool order with a free slot),
// a recorder it reads to know where each dispatch stands, and a
// conversation factory that counts every Open and Close.
//
// The cases synchronise on what the transport and the engine report (the
// recorded operations, the capacity signal, the handlers' own channels),
// never on sleeps; the only timers are generous guards that turn a hang
// into a failure, and the activities' own timeouts where a case is about
// them.
package transporttest

import (
	"context"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
)

// Transport is what a transport gives the engine: the snapshot of a
// channel's workers, its conversations, its capacity signal and its
// membership.
type Transport interface {
	engine.WorkerPool
	engine.ConversationFactory
	engine.CapacitySignal
	engine.Membership
}

// Handler runs one activity in a worker a [Harness] starts. It must return
// when ctx ends.
type Handler func(ctx context.Context, req engine.ActivityRequest) engine.ActivityResult

// WorkerConfig describes a worker a [Harness] starts.
type WorkerConfig struct {
	ID          string
	MaxInFlight int // 0 means 1
	Handler     Handler
}

// Worker is a worker a [Harness] started.
type Worker interface {
	// ID returns the worker's id.
	ID() string
	// Stop stops the worker gracefully: it leaves the channel's membership
	// (firing the capacity signal), takes no new work and finishes what it
	// has. Stop need not wait for that: the suite waits until the worker is
	// out of the transport's Members.
	Stop(t *testing.T)
	// Kill makes the worker exit abruptly, with no goodbye, as a crash or
	// a kill -9 does (local: Worker.Stop; remote: its connection cut). Every
	// conversation linked to it observes the exit. The worker stays a
	// member of the channel (it may come back) until it leaves (see Leave).
	Kill(t *testing.T)
	// Leave makes a worker that was killed leave the channel's membership
	// for good, or lets it do so by itself (remote: when its reconnect
	// grace passes); the suite waits until it is out of Members.
	Leave(t *testing.T)
}

// Harness is one transport serving one channel, fresh for each case.
type Harness interface {
	// Transport returns the engine-facing side of the transport.
	Transport() Transport
	// Channel returns the channel the harness's workers serve; the
	// transport knows it from the start (its snapshot is empty, not an
	// unknown channel, before any worker starts).
	Channel() engine.ChannelName
	// StartWorker starts a worker on the channel. The suite waits until
	// the transport's snapshot shows it.
	StartWorker(t *testing.T, cfg WorkerConfig) Worker
}

// Rejecter is a [Harness] whose transport can express a worker that
// refuses an activity without starting it ([engine.ErrNotStarted]). A
// harness without it skips the case that needs it.
type Rejecter interface {
	// StartRejecting starts a worker that refuses the first n requests it
	// is sent without starting them, and runs cfg.Handler on the others. A
	// worker that refused reports that it has a free slot again at once.
	StartRejecting(t *testing.T, cfg WorkerConfig, n int) Worker
}
