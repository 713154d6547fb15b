package luafast

import (
	"fmt"
	"math"

	"github.com/yuin/gopher-lua/ast"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/pick"
)

// call compiles the calls of the subset: c:has_tag(tag), math.max, min,
// floor and abs, and the dispatch helpers that take the candidates.
func (c *compiler) call(e *ast.FuncCallExpr) (expr, error) {
	if attr, ok := e.Func.(*ast.AttrGetExpr); ok && e.Receiver == nil && c.global(attr.Object, "math") {
		if key, ok := attr.Key.(*ast.StringExpr); ok {
			x, err := c.mathCall(e, key.Value)
			if err != nil {
				return nil, err
			}
			return func(f *frame) value { return num(x(f)) }, nil
		}
	}
	args, err := c.exprs(e.Args)
	if err != nil {
		return nil, err
	}
	if e.Receiver == nil && c.global(e.Func, "type") && len(args) > 0 {
		return func(f *frame) value {
			v := args[0](f)
			evalRest(f, args, 1)
			return str(v.k.String())
		}, nil
	}
	if e.Receiver != nil {
		if e.Method != "has_tag" || len(args) < 1 {
			return nil, unsupported(e, "a method call other than c:has_tag(tag)")
		}
		recv, err := c.expr(e.Receiver)
		if err != nil {
			return nil, err
		}
		return c.hasTag(recv, args), nil
	}
	attr, ok := e.Func.(*ast.AttrGetExpr)
	if !ok {
		return nil, unsupported(e, "a call of a function outside the subset")
	}
	key, ok := attr.Key.(*ast.StringExpr)
	if !ok {
		return nil, unsupported(e, "a call of a function outside the subset")
	}
	if c.global(attr.Object, "dispatch") {
		return c.helperCall(e, key.Value, args)
	}
	return nil, unsupported(e, "a call of a function outside the subset")
}

// evalRest evaluates args[from:] for their effects (random draws), as the
// interpreter evaluates every argument.
func evalRest(f *frame, args []expr, from int) {
	for _, a := range args[from:] {
		a(f)
	}
}

func (c *compiler) hasTag(recv expr, args []expr) expr {
	tag := args[0]
	return func(f *frame) value {
		r := recv(f)
		if r.k != kCand {
			f.bail("has_tag on a " + r.k.String())
		}
		t := tag(f)
		evalRest(f, args, 1)
		if t.k != kStr {
			f.bail("has_tag of a " + t.k.String())
		}
		return boolean(f.in.Sel.Candidates[r.i].State.HasAffinity(t.s))
	}
}

// listArg reads a helper's list argument: the candidates, or what
// with_tag made of them.
func listArg(f *frame, a expr, helper string) value {
	v := a(f)
	if v.k != kCands && v.k != kTagged && v.k != kHealthy {
		f.bail("dispatch." + helper + " of a " + v.k.String())
	}
	return v
}

// listViews returns the views of list, as the interpreter's helpers see it.
func listViews(f *frame, list value) []engine.ConsumerStateView {
	if list.k == kTagged || list.k == kHealthy {
		return f.derivedViews(list)
	}
	return f.views()
}

// viewChoice is the id at index i of views, or nil.
func viewChoice(views []engine.ConsumerStateView, i int) value {
	if i < 0 {
		return nilValue
	}
	return str(views[i].ID)
}

// choice is the id a helper chose, or nil.
func choice(f *frame, i int) value {
	if i < 0 {
		return nilValue
	}
	return str(f.in.Sel.Candidates[i].ID())
}

func (c *compiler) helperCall(e *ast.FuncCallExpr, name string, args []expr) (expr, error) {
	switch name {
	case "least_loaded":
		switch len(args) {
		case 1:
			return func(f *frame) value {
				l := listArg(f, args[0], name)
				if l.k == kHealthy {
					views := listViews(f, l)
					return viewChoice(views, pick.LeastLoaded(views))
				}
				// LeastLoaded(WithTag(cands, tag)) is LeastLoadedWithTag(cands, tag).
				return choice(f, pick.LeastLoadedWorkers(f.in.Sel.Candidates, l.s, l.k == kTagged))
			}, nil
		case 2:
			return func(f *frame) value {
				l := listArg(f, args[0], name)
				tag := args[1](f)
				if tag.k != kStr {
					f.bail("dispatch.least_loaded with a tag that is a " + tag.k.String())
				}
				if l.k == kCands {
					return choice(f, pick.LeastLoadedWorkers(f.in.Sel.Candidates, tag.s, true))
				}
				views := listViews(f, l)
				return viewChoice(views, pick.LeastLoadedWithTag(views, tag.s))
			}, nil
		}
	case "with_tag":
		if len(args) == 2 {
			return func(f *frame) value {
				if l := args[0](f); l.k != kCands {
					f.bail("dispatch.with_tag of a " + l.k.String())
				}
				tag := args[1](f)
				if tag.k != kStr {
					f.bail("dispatch.with_tag with a tag that is a " + tag.k.String())
				}
				f.lists++ // each result is a value of its own, equal only to itself
				return value{k: kTagged, s: tag.s, i: f.lists}
			}, nil
		}
	case "rendezvous":
		if len(args) == 2 {
			return func(f *frame) value {
				l := listArg(f, args[0], name)
				key := args[1](f)
				if key.k != kStr {
					f.bail("dispatch.rendezvous with a key that is a " + key.k.String())
				}
				views := listViews(f, l)
				return viewChoice(views, pick.Rendezvous(views, key.s))
			}, nil
		}
	case "p2c":
		if len(args) == 1 {
			return func(f *frame) value {
				views := listViews(f, listArg(f, args[0], name))
				return viewChoice(views, pick.P2C(views, f.rand()))
			}, nil
		}
	case "p2c_ewma":
		if len(args) == 1 {
			return func(f *frame) value {
				views := listViews(f, listArg(f, args[0], name))
				return viewChoice(views, pick.P2CEWMA(views, f.rand()))
			}, nil
		}
	case "least_latency":
		if len(args) == 1 {
			return func(f *frame) value {
				l := listArg(f, args[0], name)
				if l.k == kCands { // the workers, read in place
					return choice(f, pick.LeastLatencyWorkers(f.in.Sel.Candidates))
				}
				views := listViews(f, l)
				return viewChoice(views, pick.LeastLatency(views))
			}, nil
		}
	case "healthy":
		if len(args) == 2 {
			return func(f *frame) value {
				if l := args[0](f); l.k != kCands {
					f.bail("dispatch.healthy of a " + l.k.String())
				}
				limit := args[1](f)
				if limit.k != kNum || limit.n != limit.n {
					f.bail("dispatch.healthy with a limit that is a " + limit.k.String() + " or NaN")
				}
				f.lists++ // each result is a value of its own, equal only to itself
				return value{k: kHealthy, n: limit.n, i: f.lists}
			}, nil
		}
	case "random":
		return func(f *frame) value {
			evalRest(f, args, 0)
			return num(f.rand().Float64())
		}, nil
	case "has_tag":
		if len(args) == 2 {
			return c.hasTag(args[0], args[1:]), nil
		}
	}
	return nil, unsupported(e, fmt.Sprintf("dispatch.%s with %d arguments", name, len(args)))
}

// mathCall compiles math.max, min, floor and abs, whose arguments must be
// numbers (the interpreter's CheckNumber would also take a numeric string:
// that falls back).
func (c *compiler) mathCall(e *ast.FuncCallExpr, name string) (numExpr, error) {
	if name == "random" {
		return c.mathRandom(e)
	}
	if len(e.Args) == 0 {
		return nil, unsupported(e, "math."+name+" without arguments")
	}
	switch name {
	case "max", "min":
		args := make([]numExpr, len(e.Args))
		for i, a := range e.Args {
			x, err := c.num(a)
			if err != nil {
				return nil, err
			}
			args[i] = x
		}
		isMax := name == "max"
		if len(args) == 2 {
			a0, a1 := args[0], args[1]
			if isMax {
				return func(f *frame) float64 {
					m, v := a0(f), a1(f)
					if v > m {
						m = v
					}
					return m
				}, nil
			}
			return func(f *frame) float64 {
				m, v := a0(f), a1(f)
				if v < m {
					m = v
				}
				return m
			}, nil
		}
		return func(f *frame) float64 {
			m := args[0](f)
			for _, a := range args[1:] {
				if v := a(f); isMax && v > m || !isMax && v < m {
					m = v
				}
			}
			return m
		}, nil
	case "floor", "abs":
		x, err := c.num(e.Args[0])
		if err != nil {
			return nil, err
		}
		rest, err := c.exprs(e.Args[1:]) // evaluated, not read
		if err != nil {
			return nil, err
		}
		fn := math.Floor
		if name == "abs" {
			fn = math.Abs
		}
		return func(f *frame) float64 {
			v := x(f)
			evalRest(f, rest, 0)
			return fn(v)
		}, nil
	}
	return nil, unsupported(e, "math."+name)
}

// pow is Lua's ^.
func pow(a, b float64) float64 { return math.Pow(a, b) }

// mathRandom compiles math.random as the sandbox defines it: drawing from
// the call's seeded source; math.random() in [0, 1), math.random(m) in
// [1, m], math.random(m, n) in [m, n], bounds truncated to integers.
func (c *compiler) mathRandom(e *ast.FuncCallExpr) (numExpr, error) {
	args, err := c.exprs(e.Args)
	if err != nil {
		return nil, err
	}
	// bound is an argument as the interpreter's CheckInt reads it; bounds
	// too large to convert exactly fall back.
	bound := func(f *frame, v value) int {
		if v.k != kNum || !(math.Abs(v.n) < 1<<31) {
			f.bail("math.random with a bound that is a " + v.k.String())
		}
		return int(v.n)
	}
	switch len(args) {
	case 0:
		return func(f *frame) float64 { return f.rand().Float64() }, nil
	case 1:
		return func(f *frame) float64 {
			m := bound(f, args[0](f))
			if m < 1 {
				f.bail("math.random: interval is empty")
			}
			return float64(1 + f.rand().IntN(m))
		}, nil
	}
	return func(f *frame) float64 {
		a := args[0](f)
		b := args[1](f)
		evalRest(f, args, 2)
		m, n := bound(f, a), bound(f, b)
		if m > n {
			f.bail("math.random: interval is empty")
		}
		return float64(m + f.rand().IntN(n-m+1))
	}, nil
}
