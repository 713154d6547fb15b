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

// exprCandidate is a candidate as an expr script sees it.
type exprCandidate struct {
	ID          string   `expr:"id"`
	InFlight    int      `expr:"in_flight"`
	MaxInFlight int      `expr:"max_in_flight"`
	BufferDepth int      `expr:"buffer_depth"`
	Available   int      `expr:"available"`
	Tags        []string `expr:"tags"`
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
	Candidates  []exprCandidate  `expr:"candidates"`
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
	cands   []exprCandidate
	scratch []engine.ConsumerStateView // a helper's argument, converted
	channel engine.ChannelName         // the channel env.Request.Channel names
	pcg     *rand.PCG
	rng     *rand.Rand
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
		views := r.list("withTag", args, 2)
		return r.candidates(WithTag(views, r.str("withTag", args, 1)))
	}
	r.env.Rendezvous = func(args ...any) any {
		views := r.list("rendezvous", args, 2)
		return choice(views, RendezvousIndex(views, r.str("rendezvous", args, 1)))
	}
	r.env.P2C = func(args ...any) any {
		views := r.list("p2c", args, 1)
		return choice(views, P2CIndex(views, r.rng))
	}
	r.env.Random = func(args ...any) any {
		if len(args) != 0 {
			panic("random() takes no arguments")
		}
		return r.rng.Float64()
	}
	r.env.HasTag = func(args ...any) any {
		if len(args) != 2 {
			panic(fmt.Sprintf("hasTag(candidate, tag) takes 2 arguments, got %d", len(args)))
		}
		c, ok := args[0].(exprCandidate)
		if !ok {
			panic(fmt.Sprintf("hasTag: argument 1 must be a candidate, got %T", args[0]))
		}
		tag := r.str("hasTag", args, 1)
		for _, t := range c.Tags {
			if t == tag {
				return true
			}
		}
		return false
	}
	return r
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
	r.in = in
	seed(r.pcg, in.sel.ConversationID, in.sel.Attempt)
	in.rng = r.rng
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
	r.cands = r.cands[:0]
	for _, v := range in.views {
		r.cands = append(r.cands, toExprCandidate(v))
	}
	r.env.Candidates = r.cands
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

func toExprCandidate(v engine.ConsumerStateView) exprCandidate {
	return exprCandidate{ID: v.ID, InFlight: v.InFlight, MaxInFlight: v.MaxInFlight,
		BufferDepth: v.BufferDepth, Available: v.Available(), Tags: v.Tags}
}

func (r *exprRunner) candidates(views []engine.ConsumerStateView) []exprCandidate {
	out := make([]exprCandidate, len(views))
	for i, v := range views {
		out[i] = toExprCandidate(v)
	}
	return out
}

// list reads argument 0 of a helper as a list of candidates: the
// candidates variable, a helper's result, or what filter() and friends return.
func (r *exprRunner) list(fn string, args []any, want int) []engine.ConsumerStateView {
	if len(args) != want {
		panic(fmt.Sprintf("%s takes %d argument(s), got %d", fn, want, len(args)))
	}
	// The views live until the helper returns; helpers that return a list
	// build a new one, so the runner's scratch buffer can hold them.
	views := r.scratch[:0]
	switch l := args[0].(type) {
	case []exprCandidate:
		for _, c := range l {
			views = append(views, fromExprCandidate(c))
		}
	case []any:
		for i, e := range l {
			c, ok := e.(exprCandidate)
			if !ok {
				panic(fmt.Sprintf("%s: element %d is %T, not a candidate", fn, i, e))
			}
			views = append(views, fromExprCandidate(c))
		}
	default:
		panic(fmt.Sprintf("%s: argument 1 must be a list of candidates, got %T", fn, args[0]))
	}
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

func fromExprCandidate(c exprCandidate) engine.ConsumerStateView {
	return engine.ConsumerStateView{ID: c.ID, InFlight: c.InFlight, MaxInFlight: c.MaxInFlight,
		BufferDepth: c.BufferDepth, Tags: c.Tags}
}

// choice returns the chosen id, or nil.
func choice(views []engine.ConsumerStateView, i int) any {
	if i < 0 {
		return nil
	}
	return views[i].ID
}
