package health

import (
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// BenchmarkAnswered is what recording one answer costs a transport.
func BenchmarkAnswered(b *testing.B) {
	var tr Tracker
	now := t0
	for b.Loop() {
		now = now.Add(3 * time.Microsecond)
		tr.Answered(now, 2*time.Millisecond, false)
	}
}

// BenchmarkFill is what reading one worker's figures costs a snapshot.
func BenchmarkFill(b *testing.B) {
	var tr Tracker
	tr.Answered(t0, 2*time.Millisecond, false)
	now := t0.Add(time.Microsecond)
	var v engine.ConsumerStateView
	for b.Loop() {
		tr.Fill(&v, now)
	}
}

// BenchmarkClock is one reading of the transports' clock, beside
// time.Now.
func BenchmarkClock(b *testing.B) {
	c := NewClock()
	b.Run("Clock", func(b *testing.B) {
		for b.Loop() {
			_ = c.Now()
		}
	})
	b.Run("time.Now", func(b *testing.B) {
		for b.Loop() {
			_ = time.Now()
		}
	})
}
