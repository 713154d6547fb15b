package exprfast

import (
	"github.com/expr-lang/expr/ast"

	"github.com/aion-dispatch/dispatch/router/internal/pick"
)

// call compiles a call of a helper, which calls the package pick function
// exprrt's helper calls.
func (c *compiler) call(n *ast.CallNode) eval {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		c.unsupported(n, "a call of an expression")
	}
	if _, shadowed := c.lookup(id.Value); shadowed {
		c.unsupported(n, "a call of a variable")
	}
	args := make([]eval, len(n.Arguments))
	for i, a := range n.Arguments {
		args[i] = c.compile(a)
	}
	arity := func(lo, hi int) {
		if len(args) < lo || len(args) > hi {
			c.unsupported(n, "%s with %d arguments", id.Value, len(args))
		}
	}
	list := func(f *frame) value {
		l := args[0](f)
		if l.k != kList {
			f.bail("a helper given " + l.k.String())
		}
		return l
	}
	str := func(f *frame, i int) string {
		v := args[i](f)
		if v.k != kStr {
			f.bail("a helper given " + v.k.String() + " for a string")
		}
		return v.s
	}
	switch id.Value {
	case "leastLoaded":
		arity(1, 2)
		byTag := len(args) == 2
		return func(f *frame) value {
			l := list(f)
			var tag string
			if byTag {
				tag = str(f, 1)
			}
			if l.i < 0 { // the candidates: read the workers in place
				ws := f.in.Sel.Candidates
				return choiceWorkers(f, pick.LeastLoadedWorkers(ws, tag, byTag))
			}
			views := f.listViews(l)
			if byTag {
				return choiceViews(views, pick.LeastLoadedWithTag(views, tag))
			}
			return choiceViews(views, pick.LeastLoaded(views))
		}
	case "withTag":
		arity(2, 2)
		return func(f *frame) value {
			l := list(f)
			tag := str(f, 1)
			off := len(f.arena)
			for j := range l.n {
				if i := f.elem(l, j); f.in.Sel.Candidates[i].State.HasAffinity(tag) {
					f.arena = append(f.arena, int32(i))
				}
			}
			return value{k: kList, i: off, n: len(f.arena) - off}
		}
	case "rendezvous":
		arity(2, 2)
		return func(f *frame) value {
			l := list(f)
			key := str(f, 1)
			views := f.listViews(l)
			return choiceViews(views, pick.Rendezvous(views, key))
		}
	case "p2c":
		arity(1, 1)
		return func(f *frame) value {
			views := f.listViews(list(f))
			return choiceViews(views, pick.P2C(views, f.rand()))
		}
	case "p2cEwma":
		arity(1, 1)
		return func(f *frame) value {
			views := f.listViews(list(f))
			return choiceViews(views, pick.P2CEWMA(views, f.rand()))
		}
	case "leastLatency":
		arity(1, 1)
		return func(f *frame) value {
			l := list(f)
			if l.i < 0 { // the candidates: read the workers in place
				return choiceWorkers(f, pick.LeastLatencyWorkers(f.in.Sel.Candidates))
			}
			views := f.listViews(l)
			return choiceViews(views, pick.LeastLatency(views))
		}
	case "healthy":
		arity(2, 2)
		return func(f *frame) value {
			l := list(f)
			limit := args[1](f)
			if !limit.isNumber() {
				f.bail("healthy given " + limit.k.String() + " for a number")
			}
			lim := limit.float()
			off := len(f.arena)
			for j := range l.n {
				if i := f.elem(l, j); f.in.Sel.Candidates[i].State.ErrorRate <= lim {
					f.arena = append(f.arena, int32(i))
				}
			}
			return value{k: kList, i: off, n: len(f.arena) - off}
		}
	case "random":
		arity(0, 0)
		return func(f *frame) value { return floatValue(f.rand().Float64()) }
	case "hasTag":
		arity(2, 2)
		return func(f *frame) value {
			cv := args[0](f)
			if cv.k != kCand {
				f.bail("hasTag given " + cv.k.String())
			}
			return boolValue(f.in.Sel.Candidates[cv.i].State.HasAffinity(str(f, 1)))
		}
	}
	c.unsupported(n, "a call of %s", id.Value)
	return nil
}

func choiceWorkers(f *frame, i int) value {
	if i < 0 {
		return nilValue
	}
	return strValue(f.in.Sel.Candidates[i].ID())
}

func choiceViews(views []engineView, i int) value {
	if i < 0 {
		return nilValue
	}
	return strValue(views[i].ID)
}
