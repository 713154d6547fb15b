// Package health keeps what a transport observes of one worker on one
// channel (how long it takes to answer, how often it fails, how often it
// exits) and fills it into the worker's [engine.ConsumerStateView].
//
// Transports record an observation when an answer or an exit arrives,
// which is off the routing path; a router's snapshot reads the figures
// without a lock. The figures age by time, not by count (see
// [engine.ObservedHalfLife]), and how they are computed is documented on
// the view's fields.
package health

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// halfLife is engine.ObservedHalfLife in nanoseconds, as a float.
const halfLife = float64(engine.ObservedHalfLife)

// Tracker is one worker's observed figures on one channel. Its methods are
// safe for concurrent use: writers serialise on a mutex, and [Tracker.Fill]
// reads atomics only. The zero value is a tracker that observed nothing.
type Tracker struct {
	mu sync.Mutex // serialises writers
	// Under mu: the time the sums are aged to (the first sample's, plus
	// whole milliseconds), and the decayed sums of the averages as of then.
	last                     int64
	sampled                  bool
	latencySum, latencyCount float64
	errorSum, answerCount    float64
	exitNext                 int // where the next exit goes in exitTimes

	// Published for readers: float64 bits, and times in Unix nanoseconds.
	ewma, peak, errRate atomic.Uint64
	stamp               atomic.Int64 // the time peak is as of (last, when peak was set)
	errStamp            atomic.Int64 // the time errRate is as of (last, when an answer set it)
	sampledOnce         atomic.Bool  // ewma, peak and errRate hold figures
	exits               atomic.Int64 // exits recorded, ever
	exitTimes           [engine.MaxObservedExits]atomic.Int64
}

// decay ages what was as of then to now, by whole milliseconds: it
// returns how much it counts at now (1/2 per half-life) and the time it is
// then as of, then plus the whole milliseconds counted. Less than a
// millisecond counts as no time, and is not lost: it counts once it adds up
// to one (so a sample every 0.1 ms ages as fast as one every second, and
// most reads of a busy worker need no exponential). A clock that went
// backwards counts as no time passed.
func decay(then, now int64) (float64, int64) {
	ms := (now - then) / int64(time.Millisecond)
	if ms <= 0 {
		return 1, then
	}
	return math.Exp2(-float64(ms) * float64(time.Millisecond) / halfLife), then + ms*int64(time.Millisecond)
}

// Answered records an answer that took took: completed, or failed if
// failed. It moves the latency averages and the error rate.
func (t *Tracker) Answered(now time.Time, took time.Duration, failed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sample(now.UnixNano(), max(took.Seconds(), 0))
	t.answerCount++
	if failed {
		t.errorSum++
	}
	storeBits(&t.errRate, math.Float64bits(min(t.errorSum/t.answerCount, 1)))
	storeTime(&t.errStamp, t.last)
	if !t.sampledOnce.Load() {
		t.sampledOnce.Store(true)
	}
}

// Abandoned records an activity whose answer dispatch stopped waiting for
// after took (it timed out, or its workflow gave up): took is a lower bound
// of the worker's latency, so it moves the latency averages; it is no
// answer, so it leaves the error rate as it is.
func (t *Tracker) Abandoned(now time.Time, took time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sample(now.UnixNano(), max(took.Seconds(), 0))
	if !t.sampledOnce.Load() {
		t.sampledOnce.Store(true)
	}
}

// sample ages every sum to n and adds a latency sample of x seconds to
// the latency averages. t.mu is held.
func (t *Tracker) sample(n int64, x float64) {
	d := 0.0 // the first sample is the whole average
	if t.sampled {
		d, t.last = decay(t.last, n)
	} else {
		t.last, t.sampled = n, true
	}
	t.errorSum, t.answerCount = t.errorSum*d, t.answerCount*d
	t.latencySum, t.latencyCount = t.latencySum*d+x, t.latencyCount*d+1
	storeBits(&t.ewma, math.Float64bits(t.latencySum/t.latencyCount))
	// Finagle's peak EWMA: what a reader sees now is the peak decayed
	// towards 0 since the last sample; a sample above that replaces it,
	// one below is blended in by the time that passed.
	seen := math.Float64frombits(t.peak.Load()) * d
	peak := x
	if x <= seen {
		peak = seen + x*(1-d)
	}
	storeBits(&t.peak, math.Float64bits(peak))
	storeTime(&t.stamp, t.last)
}

// storeBits and storeTime publish v unless a already holds it, which is
// often (an error rate of 0, a time within the same millisecond): an
// atomic load is a plain read, a store a locked instruction. Only writers,
// serialised on t.mu, store, so nothing changes a between the two.
func storeBits(a *atomic.Uint64, v uint64) {
	if a.Load() != v {
		a.Store(v)
	}
}

func storeTime(a *atomic.Int64, v int64) {
	if a.Load() != v {
		a.Store(v)
	}
}

// Exited records that the worker left an activity unanswered because it
// exited, its connection ended or it lost the request.
func (t *Tracker) Exited(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.exitTimes[t.exitNext].Store(now.UnixNano())
	t.exitNext = (t.exitNext + 1) % len(t.exitTimes)
	t.exits.Add(1)
}

// Fill sets v's observed figures as they are at now. It takes no lock.
func (t *Tracker) Fill(v *engine.ConsumerStateView, now time.Time) {
	n := now.UnixNano()
	if t.sampledOnce.Load() {
		v.LatencyEWMA = math.Float64frombits(t.ewma.Load())
		idle, _ := decay(t.stamp.Load(), n)
		v.LatencyPeakEWMA = math.Float64frombits(t.peak.Load()) * idle
		// Since the last answer, not the last sample: an activity given
		// up on is no answer, and leaves the rate to decay.
		idle, _ = decay(t.errStamp.Load(), n)
		v.ErrorRate = math.Float64frombits(t.errRate.Load()) * idle
	}
	recorded := min(t.exits.Load(), int64(len(t.exitTimes)))
	if recorded == 0 {
		return
	}
	since := n - int64(engine.ObservedExitWindow)
	for i := range recorded {
		if t.exitTimes[i].Load() > since {
			v.Exits++
		}
	}
}

// Clock is the system's clock as transports read it for observations: the
// wall time when it was made plus the monotonic time since. It reads the
// monotonic clock only (about half the cost of [time.Now]), and a step of
// the wall clock does not move it. Make one with [NewClock].
type Clock struct{ base time.Time }

// NewClock returns a Clock that starts at the wall time now.
func NewClock() Clock { return Clock{base: time.Now()} }

// Now returns the clock's time.
func (c Clock) Now() time.Time { return c.base.Add(time.Since(c.base)) }
