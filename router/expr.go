package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
	"github.com/aion-dispatch/dispatch/router/internal/pick"
)

// exprProgram is a compiled expr routing script. The *vm.Program is shared;
// each call borrows a runner holding its own VM and reusable buffers.
type exprProgram struct {
	prog   *vm.Program
	src    []byte
	limits Limits
	// timed: the program may take time beyond a pass over the candidates
	// (it has predicates, ranges or calls other than the helpers), so each
	// run is timed against the deadline. expr cannot be interrupted, so a
	// run past the deadline is reported as a timeout when it ends.
	timed bool
	// readsCandidates: the program reads candidates' fields itself (members,
	// predicates, builtins) rather than only passing lists to helpers, so the
	// runner's candidate values must be kept up to date.
	readsCandidates bool

	mu   sync.Mutex
	free []*exprRunner
}

// exprCandidate is a candidate as an expr script sees it. Scripts get
// pointers into the runner's own array, so lists built by filter or withTag
// copy pointers, not candidates.
// The json tags give toJSON the names scripts know.
type exprCandidate struct {
	ID          string   `expr:"id" json:"id"`
	InFlight    int      `expr:"in_flight" json:"in_flight"`
	MaxInFlight int      `expr:"max_in_flight" json:"max_in_flight"`
	BufferDepth int      `expr:"buffer_depth" json:"buffer_depth"`
	Available   int      `expr:"available" json:"available"`
	Tags        []string `expr:"tags" json:"tags"`
	slot        int      // index into the call's views
}

// exprRequest is the request as an expr script sees it.
type exprRequest struct {
	Namespace        string `expr:"namespace" json:"namespace"`
	TaskQueue        string `expr:"task_queue" json:"task_queue"`
	Channel          string `expr:"channel" json:"channel"`
	WorkflowID       string `expr:"workflow_id" json:"workflow_id"`
	ConversationID   string `expr:"conversation_id" json:"conversation_id"`
	Attempt          int    `expr:"attempt" json:"attempt"`
	ActivityType     string `expr:"activity_type" json:"activity_type"`
	InputContentType string `expr:"input_content_type" json:"input_content_type"`
	Input            string `expr:"input" json:"input"`
}

// helper is the shape of every helper: expr's fast call path.
type helper = func(...any) any

// exprEnvTypes declares what an expr script can name and its types, for the
// compiler. At run time each runner passes a map of the same shape: a map
// env is read with a plain map lookup, where a struct env costs reflection
// on every name. The helpers are bound to the runner, so that random and p2c
// draw from the decision's own seeded source.
func exprEnvTypes() map[string]any {
	return map[string]any{
		"request":     &exprRequest{},
		"candidates":  []*exprCandidate{},
		"excluded":    []string{},
		"leastLoaded": helper(nil),
		"withTag":     helper(nil),
		"rendezvous":  helper(nil),
		"p2c":         helper(nil),
		"random":      helper(nil),
		"hasTag":      helper(nil),
	}
}

func compileExpr(src []byte, limits Limits) (*exprProgram, error) {
	opts := append([]expr.Option{expr.Env(exprEnvTypes()), expr.MaxNodes(limits.exprMaxNodes())}, exprValueFunctions()...)
	prog, err := expr.Compile(string(src), opts...)
	if err != nil {
		return nil, exprError(src, err)
	}
	v := &shapeVisitor{}
	node := prog.Node()
	ast.Walk(&node, v)
	if err := helperValues(node, src); err != nil {
		return nil, exprError(src, err)
	}
	return &exprProgram{prog: prog, src: src, limits: limits, timed: v.timed, readsCandidates: v.reads}, nil
}

// helperNames are the env functions that run a bounded pass in Go.
var helperNames = map[string]bool{
	"leastLoaded": true, "withTag": true, "rendezvous": true, "p2c": true, "random": true, "hasTag": true,
}

// helperValues refuses a helper named other than to call it: a function
// value has nothing a script can use, and fmt would write it, in a string
// or a message, as its address.
func helperValues(node ast.Node, src []byte) error {
	var callees, named []*ast.IdentifierNode
	ast.Walk(&node, visitFunc(func(n ast.Node) {
		switch n := n.(type) {
		case *ast.CallNode:
			if id, ok := n.Callee.(*ast.IdentifierNode); ok {
				callees = append(callees, id)
			}
		case *ast.IdentifierNode:
			if helperNames[n.Value] {
				named = append(named, n)
			}
		}
	}))
	for _, id := range named {
		if !slices.Contains(callees, id) {
			fe := &file.Error{Location: id.Location(),
				Message: fmt.Sprintf("%s is a helper and not a value: call it, as in %s(candidates)", id.Value, id.Value)}
			return fe.Bind(file.NewSource(string(src)))
		}
	}
	return nil
}

// visitFunc is an ast.Visitor calling a function on every node.
type visitFunc func(ast.Node)

func (f visitFunc) Visit(n *ast.Node) { f(*n) }

// shapeVisitor finds what a program does beyond calling helpers: anything
// but member reads, operators and helper calls may take time (timed), and
// member reads, pointers, predicates and builtins may read candidates.
type shapeVisitor struct{ timed, reads bool }

func (v *shapeVisitor) Visit(n *ast.Node) {
	switch n := (*n).(type) {
	case *ast.PredicateNode, *ast.BuiltinNode:
		v.timed, v.reads = true, true
	case *ast.MemberNode, *ast.PointerNode:
		v.reads = true
	case *ast.BinaryNode:
		if n.Operator == ".." {
			v.timed = true
		}
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); !ok || !helperNames[id.Value] {
			v.timed, v.reads = true, true
		}
	}
}

// exprError renders an expr error as a ScriptError, in the script's terms.
func exprError(src []byte, err error) error {
	se := &call.Error{Message: exprMessage(err.Error()), Err: err}
	var fe *file.Error
	if errors.As(err, &fe) {
		se.Line, se.Column, se.Message = fe.Line, fe.Column+1, exprMessage(fe.Message)
		se.Snippet = call.SourceLine(src, fe.Line)
	}
	return se
}

var noField = regexp.MustCompile(`^type router\.expr(Candidate|Request) has no field (\S+)$`)

// exprTypeNames puts the script's words for the env's Go types into expr's
// messages, longest first.
var exprTypeNames = strings.NewReplacer(
	"[]*router.exprCandidate", "a list of candidates",
	"[][2]interface {}", "a list of pairs",
	"[]interface {}", "a list",
	"map[string]interface {}", "a map",
	"func(...interface {}) interface {}", "a function",
	"interface {}", "any",
	"*router.exprCandidate", "a candidate",
	"router.exprCandidate", "a candidate",
	"*router.exprRequest", "the request",
	"router.exprRequest", "the request",
)

// exprMessage rewords an expr message that names the env's Go types.
func exprMessage(msg string) string {
	if strings.HasPrefix(msg, "cannot use router.exprCandidate as type *router.exprCandidate") {
		return `a candidate cannot be looked for in a list with "in"; compare ids, for example any(candidates, .id == "w1")`
	}
	if m := noField.FindStringSubmatch(msg); m != nil {
		if m[1] == "Candidate" {
			return fmt.Sprintf("a candidate has no field %s (it has %s)", m[2], exprFields(exprCandidate{}))
		}
		return fmt.Sprintf("the request has no field %s (it has %s)", m[2], exprFields(exprRequest{}))
	}
	return exprTypeNames.Replace(msg)
}

// exprFields lists the expr names of v's fields.
func exprFields(v any) string {
	t := reflect.TypeOf(v)
	var names []string
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("expr"); tag != "" {
			names = append(names, tag)
		}
	}
	return strings.Join(names, ", ")
}

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
			return ws[i].ID
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

func (p *exprProgram) put(r *exprRunner) {
	r.callIn.Release()
	r.callIn, r.in = call.Input{}, nil
	p.mu.Lock()
	if len(p.free) < p.limits.poolSize() {
		p.free = append(p.free, r)
	}
	p.mu.Unlock()
}

func (p *exprProgram) Run(_ context.Context, selection *engine.Selection, timeout time.Duration) (call.Result, error) {
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
		} else if c.slot != i || c.ID != w.ID || c.InFlight != v.InFlight || c.MaxInFlight != v.MaxInFlight ||
			c.BufferDepth != v.BufferDepth || !sameSlice(c.Tags, v.Tags) {
			*c = exprCandidate{ID: w.ID, InFlight: v.InFlight, MaxInFlight: v.MaxInFlight,
				BufferDepth: v.BufferDepth, Available: v.Available(), Tags: v.Tags, slot: i}
		}
		r.ptrs = append(r.ptrs, c)
	}
}

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

// choice returns the chosen id, or nil.
func choice(views []engine.ConsumerStateView, i int) any {
	if i < 0 {
		return nil
	}
	return views[i].ID
}
