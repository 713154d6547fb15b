package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/aion-dispatch/dispatch/engine"
)

// exprProgram is a compiled expr routing script. The *vm.Program is shared;
// each call borrows a runner holding its own VM and reusable buffers.
type exprProgram struct {
	prog   *vm.Program
	src    []byte
	limits Limits

	mu   sync.Mutex
	free []*exprRunner
}

// exprCandidate is a candidate as an expr script sees it. Scripts get
// pointers into the runner's own array, so lists built by filter or withTag
// copy pointers, not candidates.
type exprCandidate struct {
	ID          string   `expr:"id"`
	InFlight    int      `expr:"in_flight"`
	MaxInFlight int      `expr:"max_in_flight"`
	BufferDepth int      `expr:"buffer_depth"`
	Available   int      `expr:"available"`
	Tags        []string `expr:"tags"`
	slot        int      // index into the call's views
}

// exprRequest is the request as an expr script sees it.
type exprRequest struct {
	Namespace        string `expr:"namespace"`
	TaskQueue        string `expr:"task_queue"`
	Channel          string `expr:"channel"`
	WorkflowID       string `expr:"workflow_id"`
	ConversationID   string `expr:"conversation_id"`
	Attempt          int    `expr:"attempt"`
	ActivityType     string `expr:"activity_type"`
	InputContentType string `expr:"input_content_type"`
	Input            string `expr:"input"`
}

// exprEnv is everything an expr script can name. The helpers are fields
// bound to the runner, so that random and p2c draw from the decision's own
// seeded source; their func(...any) any shape is expr's fast call path.
type exprEnv struct {
	Request     exprRequest      `expr:"request"`
	Candidates  []*exprCandidate `expr:"candidates"`
	Excluded    []string         `expr:"excluded"`
	LeastLoaded func(...any) any `expr:"leastLoaded"`
	WithTag     func(...any) any `expr:"withTag"`
	Rendezvous  func(...any) any `expr:"rendezvous"`
	P2C         func(...any) any `expr:"p2c"`
	Random      func(...any) any `expr:"random"`
	HasTag      func(...any) any `expr:"hasTag"`
}

func compileExpr(name string, src []byte, limits Limits) (*exprProgram, error) {
	prog, err := expr.Compile(string(src),
		expr.Env(&exprEnv{}),
		expr.MaxNodes(limits.exprMaxNodes()),
	)
	if err != nil {
		return nil, exprError(name, src, err)
	}
	return &exprProgram{prog: prog, src: src, limits: limits}, nil
}

// exprError renders an expr error as a ScriptError.
func exprError(name string, src []byte, err error) error {
	se := &ScriptError{Lang: Expr, File: name, Message: err.Error(), Err: err}
	var fe *file.Error
	if errors.As(err, &fe) {
		se.Line, se.Column, se.Message = fe.Line, fe.Column+1, fe.Message
		se.Snippet = sourceLine(src, fe.Line)
	}
	return se
}

type exprRunner struct {
	vm      vm.VM
	env     exprEnv
	store   []exprCandidate            // the candidates env.Candidates points into
	ptrs    []*exprCandidate           // env.Candidates' backing array
	scratch []engine.ConsumerStateView // a helper's argument, as views
	channel engine.ChannelName         // the channel env.Request.Channel names
	pcg     *rand.PCG
	rng     *rand.Rand
	seeded  bool // the rng is seeded for the current call
	in      *callInput
}

func (p *exprProgram) get() *exprRunner {
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
	r.vm.MemoryBudget = p.limits.exprMemory()
	r.env.LeastLoaded = func(args ...any) any {
		views := r.list("leastLoaded", args, 1)
		return choice(views, LeastLoadedIndex(views))
	}
	r.env.WithTag = func(args ...any) any {
		r.arity("withTag", args, 2)
		tag := r.str("withTag", args, 1)
		var out []*exprCandidate
		r.each("withTag", args[0], func(c *exprCandidate) {
			if r.in.sel.Candidates[c.slot].State.HasAffinity(tag) {
				out = append(out, c)
			}
		})
		return out
	}
	r.env.Rendezvous = func(args ...any) any {
		views := r.list("rendezvous", args, 2)
		return choice(views, RendezvousIndex(views, r.str("rendezvous", args, 1)))
	}
	r.env.P2C = func(args ...any) any {
		views := r.list("p2c", args, 1)
		return choice(views, P2CIndex(views, r.rand()))
	}
	r.env.Random = func(args ...any) any {
		r.arity("random", args, 0)
		return r.rand().Float64()
	}
	r.env.HasTag = func(args ...any) any {
		r.arity("hasTag", args, 2)
		c, ok := args[0].(*exprCandidate)
		if !ok {
			panic(fmt.Sprintf("hasTag: argument 1 must be a candidate, got %T", args[0]))
		}
		return r.in.sel.Candidates[c.slot].State.HasAffinity(r.str("hasTag", args, 1))
	}
	return r
}

// rand returns the decision's random source, seeding it on first use.
func (r *exprRunner) rand() *rand.Rand {
	if !r.seeded {
		seed(r.pcg, r.in.sel.ConversationID, r.in.sel.Attempt)
		r.seeded = true
	}
	return r.rng
}

func (p *exprProgram) put(r *exprRunner) {
	r.in = nil
	p.mu.Lock()
	if len(p.free) < p.limits.poolSize() {
		p.free = append(p.free, r)
	}
	p.mu.Unlock()
}

func (p *exprProgram) route(_ context.Context, in *callInput, deadline time.Time) (rawResult, error) {
	r := p.get()
	r.in, r.seeded = in, false
	sel := in.sel
	req := &r.env.Request
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
	r.store, r.ptrs = r.store[:0], r.ptrs[:0]
	for i := range sel.Candidates {
		w := &sel.Candidates[i]
		v := &w.State
		r.store = append(r.store, exprCandidate{ID: w.ID, InFlight: v.InFlight, MaxInFlight: v.MaxInFlight,
			BufferDepth: v.BufferDepth, Available: v.Available(), Tags: v.Tags, slot: i})
	}
	for i := range r.store {
		r.ptrs = append(r.ptrs, &r.store[i])
	}
	r.env.Candidates = r.ptrs
	r.env.Excluded = sel.Excluded
	out, err := r.vm.Run(p.prog, &r.env)
	p.put(r)
	if time.Now().After(deadline) {
		return rawResult{}, ErrScriptTimeout
	}
	if err != nil {
		return rawResult{}, exprError("", p.src, err)
	}
	switch v := out.(type) {
	case nil:
		return rawResult{none: true}, nil
	case string:
		return rawResult{id: v}, nil
	case exprCandidate:
		return rawResult{id: v.ID, candidate: true}, nil
	case *exprCandidate:
		if v != nil {
			return rawResult{id: v.ID, candidate: true}, nil
		}
		return rawResult{none: true}, nil
	}
	return rawResult{other: fmt.Sprintf("%T %v", out, out)}, nil
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
	if l, ok := args[0].([]*exprCandidate); ok && len(l) == len(r.ptrs) && (len(l) == 0 || &l[0] == &r.ptrs[0]) {
		return r.in.allViews()
	}
	views := r.scratch[:0]
	r.each(fn, args[0], func(c *exprCandidate) { views = append(views, r.in.view(c.slot)) })
	r.scratch = views
	return views
}

func (r *exprRunner) str(fn string, args []any, i int) string {
	s, ok := args[i].(string)
	if !ok {
		panic(fmt.Sprintf("%s: argument %d must be a string, got %T", fn, i+1, args[i]))
	}
	return s
}

// choice returns the chosen id, or nil.
func choice(views []engine.ConsumerStateView, i int) any {
	if i < 0 {
		return nil
	}
	return views[i].ID
}
