package exprfast

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

// ErrFallback is what [Program.Run] returns for a call it does not model:
// the caller runs the call in expr's VM instead.
var ErrFallback = errors.New("exprfast: the call needs the expr VM")

// checkEvery is how many elements the builtins' loops visit between two
// looks at the clock and the caller's context: a power of two.
const checkEvery = 64

// Program is a compiled expr routing script. It is safe for concurrent use.
type Program struct {
	body   eval
	nslots int
	depth  int  // how deeply predicates nest
	budget uint // the VM's memory budget
	frames sync.Pool
	direct []directCall // the calls of a direct program (see directCall), or nil
}

// frame is one call's state: its variables, its lists, its input and its
// clock.
type frame struct {
	slots   []value
	arena   []int32   // the candidates of the lists the call built, by index
	scratch [][]int32 // one filter's matches per predicate depth, while it runs
	in      call.Input
	watch   call.Watch
	mem     uint // what the VM would have counted against its budget
	budget  uint
	pcg     *rand.PCG
	rng     *rand.Rand
	seeded  bool
	views   []engine.ConsumerStateView // a list's views, for a helper
}

// bail abandons the call: the VM will run it.
func (f *frame) bail(why string) { call.Bail(why) }

// tick counts an element visited by a loop; every checkEvery of them, it
// stops the call if its deadline passed or its context ended.
func (f *frame) tick() { f.watch.Tick() }

// check stops the call if its deadline passed or its context ended.
func (f *frame) check() { f.watch.Check() }

// grow counts n against the memory budget as the VM counts a list filter
// built (OpArray); past the budget the VM fails the call, so the call
// falls back for the VM to report it.
func (f *frame) grow(n int) {
	f.mem += uint(n)
	if f.mem >= f.budget {
		f.bail("the memory budget")
	}
}

// rand returns the call's random source, seeded on first use by the
// conversation and attempt, as exprrt seeds its own: a call that falls
// back draws the same numbers again.
func (f *frame) rand() *rand.Rand {
	if !f.seeded {
		pick.Seed(f.pcg, f.in.Sel.ConversationID, f.in.Sel.Attempt)
		f.seeded = true
	}
	return f.rng
}

// elem returns the index of a list's element j in the selection.
func (f *frame) elem(l value, j int) int {
	if l.i < 0 {
		return j
	}
	return int(f.arena[l.i+j])
}

// listViews returns a list's candidates as views, for a pick function:
// the selection's own for the candidates, else the frame's buffer, valid
// until the next call of listViews.
func (f *frame) listViews(l value) []engine.ConsumerStateView {
	if l.i < 0 {
		return f.in.Views()
	}
	f.views = f.views[:0]
	ws := f.in.Sel.Candidates
	for j := range l.n {
		// A worker's state is its view, id included (f.in.View): copied
		// straight into the buffer, not through a value on the stack.
		f.views = append(f.views, ws[f.elem(l, j)].State)
	}
	return f.views
}

func (p *Program) getFrame() *frame {
	if f, ok := p.frames.Get().(*frame); ok {
		return f
	}
	pcg := rand.NewPCG(0, 0)
	return &frame{slots: make([]value, p.nslots), scratch: make([][]int32, p.depth+1), pcg: pcg, rng: rand.New(pcg)}
}

// Run runs the program for one selection until deadline (the zero time for
// none) or until ctx ends. It returns the script's result; [call.ErrTimeout]
// or ctx's error when the call was stopped; or [ErrFallback] when the call
// must run in the VM, which then decides (and reports any error of the
// script).
func (p *Program) Run(ctx context.Context, sel engine.Selection, deadline time.Time) (res call.Result, err error) {
	return p.RunSelection(ctx, &sel, deadline)
}

// RunSelection is [Program.Run] on the selection sel points to, which it
// does not keep: a caller holding one passes it without a copy.
func (p *Program) RunSelection(ctx context.Context, sel *engine.Selection, deadline time.Time) (res call.Result, err error) {
	if p.direct != nil {
		return p.runDirect(ctx, sel.Candidates, deadline)
	}
	f := p.getFrame()
	f.in.Sel = *sel
	f.watch.Reset(ctx, deadline, checkEvery)
	f.seeded, f.mem, f.budget = false, 0, p.budget
	defer func() {
		if r := recover(); r != nil {
			res, err = call.Result{}, call.Recovered(r, ErrFallback)
		}
		f.in.Release()
		f.in.Sel = engine.Selection{}
		f.watch.Clear()
		clear(f.slots)
		clear(f.views)
		f.views, f.arena = f.views[:0], f.arena[:0]
		for i := range f.scratch {
			f.scratch[i] = f.scratch[i][:0]
		}
		p.frames.Put(f)
	}()
	out := p.body(f)
	// A call can end past its deadline between two looks at the clock; as
	// in exprrt, its answer does not count.
	f.check()
	return result(f, out), nil
}

// result converts what the program returned as exprrt does; what the
// router reports as a bad result (a number, a boolean, a list) is left to
// the VM to describe.
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
