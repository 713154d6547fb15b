package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestConcurrentDispatchWithRandomExits runs 10,000 dispatches over 8 workers
// that fail some activities and crash on others, restarting as they go. Every
// dispatch must end with exactly one close and one conversation_closed, and
// no worker may count an activity in flight once all have stopped.
func TestConcurrentDispatchWithRandomExits(t *testing.T) {
	const (
		dispatches = 10_000
		workers    = 8
		callers    = 32
	)
	r := newRig(t)

	var rngMu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	roll := func(n int) int {
		rngMu.Lock()
		defer rngMu.Unlock()
		return rng.IntN(n)
	}
	var exits atomic.Int64
	handler := func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
		switch roll(100) {
		case 0, 1:
			exits.Add(1)
			panic("simulated crash")
		case 2, 3, 4:
			return engine.Failed("simulated failure")
		}
		return engine.Completed(req.Input)
	}

	// One supervisor per worker slot restarts its worker after each exit.
	var (
		all  = make(chan *local.Worker, dispatches+workers)
		stop = make(chan struct{})
		sup  sync.WaitGroup
	)
	for i := range workers {
		id := fmt.Sprintf("w%d", i+1)
		w, err := r.pool.Start(r.channel, local.WorkerConfig{ID: id, MaxInFlight: 2, Handler: handler})
		if err != nil {
			t.Fatal(err)
		}
		all <- w
		sup.Add(1)
		go func() {
			defer sup.Done()
			for {
				select {
				case <-stop:
					return
				case <-w.Done():
				}
				next, err := r.pool.Start(r.channel, local.WorkerConfig{ID: id, MaxInFlight: 2, Handler: handler})
				if err != nil {
					t.Errorf("restart %s: %v", id, err)
					return
				}
				all <- next
				w = next
			}
		}()
	}

	var (
		jobs                                  = make(chan int)
		callersDone                           sync.WaitGroup
		completed, failed, noWorkers, unknown atomic.Int64
	)
	for range callers {
		callersDone.Add(1)
		go func() {
			defer callersDone.Done()
			for i := range jobs {
				_, err := r.dispatch(context.Background(), request(fmt.Sprintf("wf-%d", i)))
				switch {
				case err == nil:
					completed.Add(1)
				case errors.Is(err, engine.ErrActivityFailed):
					failed.Add(1)
				case errors.Is(err, engine.ErrNoWorkers):
					noWorkers.Add(1)
				default:
					unknown.Add(1)
					t.Errorf("unexpected error: %v", err)
				}
			}
		}()
	}
	for i := range dispatches {
		jobs <- i
	}
	close(jobs)
	callersDone.Wait()
	close(stop)
	sup.Wait()
	if err := r.pool.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(all)

	if n := r.convs.checkClosedOnce(t); n != dispatches {
		t.Errorf("opened %d conversations, want %d", n, dispatches)
	}
	ops := r.rec.all()
	if n := len(opsOf(ops, engine.OpConversationClosed)); n != dispatches {
		t.Errorf("recorded %d conversation_closed, want %d", n, dispatches)
	}
	if n := len(opsOf(ops, engine.OpConversationOpened)); n != dispatches {
		t.Errorf("recorded %d conversation_opened, want %d", n, dispatches)
	}
	// Each crash reaches the conversation that caused it and every other one
	// linked to that worker at the time.
	if got, want := int64(len(opsOf(ops, engine.OpWorkerExited))), exits.Load(); got < want || want == 0 {
		t.Errorf("recorded %d worker_exited for %d crashes", got, want)
	}
	started := 0
	for w := range all {
		started++
		if s := w.State(); s.InFlight != 0 {
			t.Errorf("worker %s: %d in flight after close", w.ID(), s.InFlight)
		}
	}
	t.Logf("%d completed, %d failed, %d no workers; %d crashes, %d workers started",
		completed.Load(), failed.Load(), noWorkers.Load(), exits.Load(), started)
	if completed.Load() == 0 || failed.Load() == 0 {
		t.Error("the mix lacks completions or failures")
	}
}
