package luafast

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
	"github.com/aion-dispatch/dispatch/router/internal/pick"
)

// ErrFallback is what [Route.Run] returns for a call it does not model: the
// caller runs the call in the interpreter instead.
var ErrFallback = errors.New("luafast: the call needs the interpreter")

// checkEvery is how many loop back edges run between two looks at the
// clock and the caller's context: a power of two.
const checkEvery = 256

// Route is a compiled route function. It is safe for concurrent use.
type Route struct {
	body   stmt
	nslots int
	frames sync.Pool
	timed  bool // see Timed
}

// Timed reports whether the route's calls must be timed against a
// deadline: it has a loop. A route without one (locals, branches, field
// reads, operators, helper calls) runs each statement at most once, and
// each helper is one pass over the candidates: its time is bounded by its
// size and the candidates', as an untimed expr program's is, and it may be
// run with no deadline, reading no clock.
func (r *Route) Timed() bool { return r.timed }

// frame is one call's state: its locals, its input and its clock.
type frame struct {
	slots  []value
	in     call.Input
	watch  call.Watch
	ret    value
	pcg    *rand.PCG
	rng    *rand.Rand
	seeded bool
	lists  int32                      // with_tag and healthy results made in this call
	buf    []engine.ConsumerStateView // the views of such a result, for a helper
	// tagLists are the with_tag and healthy lists indexed in this call
	// (see derived).
	tagLists []tagList
}

// bail abandons the call: the interpreter will run it.
func (f *frame) bail(why string) { call.Bail(why) }

// tick counts a loop back edge; every checkEvery of them, it stops the call
// if its deadline passed or its context ended.
func (f *frame) tick() { f.watch.Tick() }

// check stops the call if its deadline passed or its context ended.
func (f *frame) check() { f.watch.Check() }

// rand returns the call's random source, seeded on first use by the
// conversation and attempt, as the interpreter seeds its own: a call that
// falls back draws the same numbers again.
func (f *frame) rand() *rand.Rand {
	if !f.seeded {
		pick.Seed(f.pcg, f.in.Sel.ConversationID, f.in.Sel.Attempt)
		f.seeded = true
	}
	return f.rng
}

// views returns the candidates' states for the helpers that take views.
func (f *frame) views() []engine.ConsumerStateView { return f.in.Views() }

func (r *Route) getFrame() *frame {
	if f, ok := r.frames.Get().(*frame); ok {
		return f
	}
	pcg := rand.NewPCG(0, 0)
	return &frame{slots: make([]value, r.nslots), pcg: pcg, rng: rand.New(pcg)}
}

// Run runs the route for one selection until deadline (or until ctx ends).
// It returns the script's result; [call.ErrTimeout] or ctx's error when the
// call was stopped; or [ErrFallback] when the call must run in the
// interpreter, which then decides (and reports any error of the script).
func (r *Route) Run(ctx context.Context, sel engine.Selection, deadline time.Time) (res call.Result, err error) {
	f := r.getFrame()
	f.in.Sel = sel
	f.watch.Reset(ctx, deadline, checkEvery)
	f.seeded, f.lists = false, 0
	defer func() {
		if p := recover(); p != nil {
			res, err = call.Result{}, call.Recovered(p, ErrFallback)
		}
		f.in.Release()
		f.in.Sel = engine.Selection{}
		f.watch.Clear()
		f.ret = nilValue
		clear(f.slots)
		clear(f.buf)
		f.buf = f.buf[:0]
		f.tagLists = f.tagLists[:0] // their slots' arrays stay, for the next call
		r.frames.Put(f)
	}()
	f.slots[0], f.slots[1], f.slots[2] = value{k: kReq}, value{k: kCands}, value{k: kExcl}
	f.ret = nilValue
	r.body(f)
	// A call can end past its deadline between two looks at the clock; as
	// in the interpreter, its answer does not count.
	f.check()
	return result(f, f.ret), nil
}

// result converts what the route returned as the interpreter does; what
// the router reports as a bad result (a number, a boolean, a table) is
// left to the interpreter to describe.
func result(f *frame, v value) call.Result {
	switch v.k {
	case kNil:
		return call.Result{None: true}
	case kStr:
		return call.Result{ID: v.s}
	case kCand:
		return call.Result{ID: f.in.Sel.Candidates[v.i].ID(), Candidate: true}
	}
	f.bail("a result of type " + v.k.String())
	return call.Result{}
}
