package broadcast_test

import (
	"testing"

	"github.com/aion-dispatch/dispatch/internal/broadcast"
)

// A notify wakes every wait taken since the last one, once; a wait taken
// after it waits for the next; a notify no one waits for allocates nothing.
func TestSignal(t *testing.T) {
	var s broadcast.Signal
	if n := testing.AllocsPerRun(100, s.Notify); n != 0 {
		t.Errorf("a notify with no waiter: %v allocations, want 0", n)
	}
	if s.Waited() {
		t.Fatal("Waited before any Wait")
	}
	a, b := s.Wait(), s.Wait()
	if a != b || !s.Waited() {
		t.Fatal("two waits before a notify do not share the wake-up")
	}
	select {
	case <-a:
		t.Fatal("woken before the notify")
	default:
	}
	s.Notify()
	for _, c := range []<-chan struct{}{a, b} {
		select {
		case <-c:
		default:
			t.Fatal("a waiter was not woken")
		}
	}
	if s.Waited() {
		t.Error("Waited after the notify that woke every waiter")
	}
	c := s.Wait()
	select {
	case <-c:
		t.Fatal("a wait taken after the notify was woken by it")
	default:
	}
	s.Notify()
	<-c
}
