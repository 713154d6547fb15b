package exprrt

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
	"github.com/aion-dispatch/dispatch/router/internal/pick"
)

// exprRunner is one VM with the environment it passes a script and the
// buffers it reuses from call to call; a call borrows one from its program.
type exprRunner struct {
	vm      vm.VM
	env     map[string]any
	req     exprRequest
	store   []exprCandidate            // the candidates env.Candidates points into
	ptrs    []*exprCandidate           // env.Candidates' backing array
	scratch []engine.ConsumerStateView // a helper's argument, as views
	channel engine.ChannelName         // the channel env.Request.Channel names
	pcg     *rand.PCG
	rng     *rand.Rand
	seeded  bool // the rng is seeded for the current call
	callIn  call.Input
	in      *call.Input // &callIn during a call
	// What env holds now, so that unchanged slices are not boxed again.
	envCands    []*exprCandidate
	envExcluded []string
}

func (p *Program) get() *exprRunner {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		r := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return r
	}
	p.mu.Unlock()
	pcg := rand.NewPCG(0, 0)
	r := &exprRunner{pcg: pcg, rng: rand.New(pcg)}
	r.vm.MemoryBudget = p.limits.MemoryBudget
	r.env = map[string]any{"request": &r.req, "candidates": r.ptrs, "excluded": []string(nil)}
	r.env["leastLoaded"] = helper(func(args ...any) any {
		var tag string
		if len(args) == 2 {
			tag = r.str("leastLoaded", args, 1)
		}
		if r.whole(args) { // read the selection's workers in place
			ws := r.in.Sel.Candidates
			i := pick.LeastLoadedWorkers(ws, tag, len(args) == 2)
			if i < 0 {
				return nil
			}
			return ws[i].ID()
		}
		if len(args) == 2 { // leastLoaded(list, tag)
			views := r.list("leastLoaded", args, 2)
			return choice(views, pick.LeastLoadedWithTag(views, r.str("leastLoaded", args, 1)))
		}
		views := r.list("leastLoaded", args, 1)
		return choice(views, pick.LeastLoaded(views))
	})
	r.env["withTag"] = helper(func(args ...any) any {
		r.arity("withTag", args, 2)
		tag := r.str("withTag", args, 1)
		n := 0
		r.each("withTag", args[0], func(c *exprCandidate) {
			if r.in.Sel.Candidates[c.slot].State.HasAffinity(tag) {
				n++
			}
		})
		out := make([]*exprCandidate, 0, n)
		r.each("withTag", args[0], func(c *exprCandidate) {
			if r.in.Sel.Candidates[c.slot].State.HasAffinity(tag) {
				out = append(out, c)
			}
		})
		return out
	})
	r.env["rendezvous"] = helper(func(args ...any) any {
		views := r.list("rendezvous", args, 2)
		return choice(views, pick.Rendezvous(views, r.str("rendezvous", args, 1)))
	})
	r.env["p2c"] = helper(func(args ...any) any {
		views := r.list("p2c", args, 1)
		return choice(views, pick.P2C(views, r.rand()))
	})
	r.env["p2cEwma"] = helper(func(args ...any) any {
		views := r.list("p2cEwma", args, 1)
		return choice(views, pick.P2CEWMA(views, r.rand()))
	})
	r.env["leastLatency"] = helper(func(args ...any) any {
		r.arity("leastLatency", args, 1)
		if r.whole(args) { // read the selection's workers in place
			ws := r.in.Sel.Candidates
			i := pick.LeastLatencyWorkers(ws)
			if i < 0 {
				return nil
			}
			return ws[i].ID()
		}
		views := r.list("leastLatency", args, 1)
		return choice(views, pick.LeastLatency(views))
	})
	r.env["healthy"] = helper(func(args ...any) any {
		r.arity("healthy", args, 2)
		limit := r.number("healthy", args, 1)
		n := 0
		r.each("healthy", args[0], func(c *exprCandidate) {
			if r.in.Sel.Candidates[c.slot].State.ErrorRate <= limit {
				n++
			}
		})
		out := make([]*exprCandidate, 0, n)
		r.each("healthy", args[0], func(c *exprCandidate) {
			if r.in.Sel.Candidates[c.slot].State.ErrorRate <= limit {
				out = append(out, c)
			}
		})
		return out
	})
	r.env["random"] = helper(func(args ...any) any {
		r.arity("random", args, 0)
		return r.rand().Float64()
	})
	r.env["hasTag"] = helper(func(args ...any) any {
		r.arity("hasTag", args, 2)
		c, ok := args[0].(*exprCandidate)
		if !ok {
			panic(fmt.Sprintf("hasTag: argument 1 must be a candidate, got %T", args[0]))
		}
		return r.in.Sel.Candidates[c.slot].State.HasAffinity(r.str("hasTag", args, 1))
	})
	return r
}

// rand returns the decision's random source, seeding it on first use.
func (r *exprRunner) rand() *rand.Rand {
	if !r.seeded {
		pick.Seed(r.pcg, r.in.Sel.ConversationID, r.in.Sel.Attempt)
		r.seeded = true
	}
	return r.rng
}

func (p *Program) put(r *exprRunner) {
	r.callIn.Release()
	r.callIn, r.in = call.Input{}, nil
	p.mu.Lock()
	if len(p.free) < p.limits.PoolSize {
		p.free = append(p.free, r)
	}
	p.mu.Unlock()
}

// Run runs the script for one selection. expr cannot be interrupted: a
// program that may take time beyond a pass over the candidates is timed
// from when it starts, and a run past timeout fails with [call.ErrTimeout]
// when it ends. A script's error is a [*call.Error].
func (p *Program) Run(ctx context.Context, selection engine.Selection, timeout time.Duration) (call.Result, error) {
	return p.RunSelection(ctx, &selection, timeout)
}

// RunSelection is [Program.Run] on the selection selection points to,
// which it does not keep: a caller holding one passes it without a copy.
func (p *Program) RunSelection(ctx context.Context, selection *engine.Selection, timeout time.Duration) (call.Result, error) {
	if res, done, err := p.fast.run(selection, p.timed, &timeout); done {
		return res, err
	}
	r := p.get()
	r.callIn.Sel = *selection
	r.in, r.seeded = &r.callIn, false
	sel := &r.callIn.Sel
	req := &r.req
	if r.channel != sel.Channel || req.Channel == "" {
		r.channel = sel.Channel
		req.Namespace, req.TaskQueue, req.Channel = sel.Channel.Namespace(), sel.Channel.TaskQueue(), sel.Channel.String()
	}
	req.WorkflowID = sel.WorkflowID
	req.ConversationID = sel.ConversationID
	req.Attempt = sel.Attempt
	req.ActivityType = sel.Request.ActivityType
	req.InputContentType = sel.Request.Input.ContentType
	if req.Input != string(sel.Request.Input.Data) { // compared without a copy
		req.Input = string(sel.Request.Input.Data)
	}
	r.updateCandidates(sel.Candidates, p.readsCandidates)
	// Boxing a slice into the map allocates; skip it when the slice is the
	// one already there.
	if !samePtrs(r.envCands, r.ptrs) {
		r.env["candidates"], r.envCands = r.ptrs, r.ptrs
	}
	if !sameSlice(r.envExcluded, sel.Excluded) {
		r.env["excluded"], r.envExcluded = sel.Excluded, sel.Excluded
	}
	// The deadline counts from here, when the script starts: not the time
	// taken to get a runner or set its inputs.
	var start time.Time
	if p.timed {
		start = time.Now()
	}
	out, err := r.vm.Run(p.prog, r.env)
	// Read the result before the runner goes back: a candidate points into
	// the runner's array, which the next call rewrites.
	res := r.result(out)
	p.put(r)
	if p.timed && time.Since(start) > timeout {
		return call.Result{}, call.ErrTimeout
	}
	if err != nil {
		return call.Result{}, exprError(p.src, err)
	}
	return res, nil
}

func (r *exprRunner) result(out any) call.Result {
	switch v := out.(type) {
	case nil:
		return call.Result{None: true}
	case string:
		return call.Result{ID: v}
	case exprCandidate:
		return call.Result{ID: v.ID, Candidate: true}
	case *exprCandidate:
		if v != nil {
			return call.Result{ID: v.ID, Candidate: true}
		}
		return call.Result{None: true}
	}
	return call.Result{Other: r.describe(out)}
}

// updateCandidates makes env.Candidates show ws, rewriting only the entries
// that changed since the runner's last call. The previous call's script may
// have kept nothing: expr has no state between runs.
func (r *exprRunner) updateCandidates(ws []engine.Worker, values bool) {
	if cap(r.store) < len(ws) {
		r.store = make([]exprCandidate, len(ws), 2*len(ws))
		r.ptrs = make([]*exprCandidate, 0, cap(r.store))
		for i := range r.store {
			r.store[i].slot = -1
		}
	}
	r.store = r.store[:len(ws)]
	r.ptrs = r.ptrs[:0]
	for i := range ws {
		w, c := &ws[i], &r.store[i]
		v := &w.State
		if !values { // helpers read the workers themselves; only the slot matters
			c.slot = i
		} else if c.slot != i || c.ID != w.ID() || c.InFlight != v.InFlight || c.MaxInFlight != v.MaxInFlight ||
			c.BufferDepth != v.BufferDepth || !sameSlice(c.Tags, v.Tags) || c.LatencyEWMA != v.LatencyEWMA ||
			c.LatencyPeakEWMA != v.LatencyPeakEWMA || c.ErrorRate != v.ErrorRate || c.Exits != v.Exits {
			*c = exprCandidate{ID: w.ID(), InFlight: v.InFlight, MaxInFlight: v.MaxInFlight,
				BufferDepth: v.BufferDepth, Available: v.Available(), Tags: v.Tags,
				LatencyEWMA: v.LatencyEWMA, LatencyPeakEWMA: v.LatencyPeakEWMA, ErrorRate: v.ErrorRate, Exits: v.Exits, slot: i}
		}
		if values {
			// A map is a pointer: copying it always is cheaper than
			// comparing. A worker without labels has an empty map, not nil,
			// as in Lua.
			c.Labels = v.Labels
			if c.Labels == nil {
				c.Labels = noLabels
			}
		}
		r.ptrs = append(r.ptrs, c)
	}
}

// noLabels is the labels of a worker without any; no script can write to
// it.
var noLabels = map[string]string{}

func samePtrs(a, b []*exprCandidate) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// sameSlice reports whether a and b are the same slice (not merely equal).
func sameSlice(a, b []string) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func (r *exprRunner) arity(fn string, args []any, want int) {
	if len(args) != want {
		panic(fmt.Sprintf("%s takes %d argument(s), got %d", fn, want, len(args)))
	}
}

// each calls f for every candidate of a list: the candidates variable, a
// helper's result, or what filter() and friends return.
func (r *exprRunner) each(fn string, list any, f func(*exprCandidate)) {
	switch l := list.(type) {
	case []*exprCandidate:
		for _, c := range l {
			f(c)
		}
	case []any:
		for i, e := range l {
			c, ok := e.(*exprCandidate)
			if !ok {
				panic(fmt.Sprintf("%s: element %d is %T, not a candidate", fn, i, e))
			}
			f(c)
		}
	default:
		panic(fmt.Sprintf("%s: argument 1 must be a list of candidates, got %T", fn, list))
	}
}

// list reads argument 0 of a helper as views. The whole candidates list is
// the call's views as they are; any other list is gathered into the
// runner's scratch buffer, which lives until the helper returns.
func (r *exprRunner) list(fn string, args []any, want int) []engine.ConsumerStateView {
	r.arity(fn, args, want)
	if r.whole(args) {
		return r.in.Views()
	}
	views := r.scratch[:0]
	r.each(fn, args[0], func(c *exprCandidate) { views = append(views, r.in.View(c.slot)) })
	r.scratch = views
	return views
}

// whole reports whether a helper's first argument is the candidates variable.
func (r *exprRunner) whole(args []any) bool {
	l, ok := args[0].([]*exprCandidate)
	return ok && samePtrs(l, r.ptrs)
}

func (r *exprRunner) str(fn string, args []any, i int) string {
	s, ok := args[i].(string)
	if !ok {
		panic(fmt.Sprintf("%s: argument %d must be a string, got %T", fn, i+1, args[i]))
	}
	return s
}

// number reads argument i of a helper as a number: an int or a float.
func (r *exprRunner) number(fn string, args []any, i int) float64 {
	switch v := args[i].(type) {
	case int:
		return float64(v)
	case float64:
		return v
	}
	panic(fmt.Sprintf("%s: argument %d must be a number, got %T", fn, i+1, args[i]))
}

// choice returns the chosen id, or nil.
func choice(views []engine.ConsumerStateView, i int) any {
	if i < 0 {
		return nil
	}
	return views[i].ID
}
