package local

import (
	"context"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
)

// Freeing a slot when no one waits for the channel's capacity allocates
// nothing and takes no lock: the completion path stays as cheap as it was.
// With a waiter, the signal fires once and the next free is cheap again
// until someone asks anew.
func TestSlotFreeWithoutWaitersDoesNotAllocate(t *testing.T) {
	ch, err := engine.DispatchChannel("prod", "email")
	if err != nil {
		t.Fatal(err)
	}
	p := NewPool()
	defer func() {
		if err := p.Close(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	w, err := p.Start(ch, WorkerConfig{ID: "w1", Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(req.Input)
	}})
	if err != nil {
		t.Fatal(err)
	}
	j := new(job)
	cycle := func() {
		if !w.reserve() {
			t.Fatal("no free slot")
		}
		j.held.Store(true)
		w.release(j)
	}
	if n := testing.AllocsPerRun(1000, cycle); n != 0 {
		t.Errorf("a slot taken and freed with no one waiting: %v allocations, want 0", n)
	}

	sig := p.CapacityChanged(ch)
	cycle()
	select {
	case <-sig:
	default:
		t.Fatal("a slot freed while someone waited did not fire the signal")
	}
	if n := testing.AllocsPerRun(1000, cycle); n != 0 {
		t.Errorf("a slot taken and freed after the waiter was woken: %v allocations, want 0", n)
	}
	if n := w.State().InFlight; n != 0 {
		t.Errorf("%d in flight after every slot freed", n)
	}
}
