package exprfast

import (
	"github.com/expr-lang/expr/ast"

	"github.com/aion-dispatch/dispatch/engine"
)

type engineView = engine.ConsumerStateView

// builtin compiles the builtins of the subset, with the semantics of expr's
// compiler and runtime for them.
func (c *compiler) builtin(n *ast.BuiltinNode) eval {
	switch n.Name {
	case "len":
		c.arity(n, 1, 1)
		x := c.compile(n.Arguments[0])
		return func(f *frame) value {
			v := x(f)
			if v.k == kStr {
				return intValue(len(v.s))
			}
			size, ok := length(f, v)
			if !ok {
				f.bail("len of " + v.k.String())
			}
			return intValue(size)
		}
	case "first", "last":
		c.arity(n, 1, 1)
		x, last := c.compile(n.Arguments[0]), n.Name == "last"
		return func(f *frame) value {
			l := x(f)
			size, ok := length(f, l)
			if !ok {
				f.bail(n.Name + " of " + l.k.String())
			}
			if size == 0 {
				return nilValue // expr recovers the fetch's panic into nil
			}
			if last {
				return element(f, l, size-1)
			}
			return element(f, l, 0)
		}
	case "min", "max":
		return c.minMax(n)
	case "abs":
		c.arity(n, 1, 1)
		x := c.compile(n.Arguments[0])
		return func(f *frame) value {
			v := x(f)
			switch {
			case v.k == kInt && v.i < 0:
				return intValue(-v.i)
			case v.k == kFloat && v.f < 0:
				return floatValue(-v.f)
			case v.isNumber():
				return v
			}
			f.bail("abs of " + v.k.String())
			return nilValue
		}
	case "filter", "all", "any", "none", "one", "count", "find", "findIndex", "reduce", "sum":
		return c.loop(n)
	case "findLast", "findLastIndex":
		// expr's VM (v1.17.8) leaves its loop's condition on the stack in
		// these two (emitLoopBackwards), so a value computed before them
		// in the same expression is read wrong: `len(l) == findLast(l,
		// true).in_flight` fails with "any is bool, not int". The VM stays
		// authoritative: they run there. (Also what the optimizer makes of
		// filter(...)[-1] and last(filter(...)).)
		c.unsupported(n, "%s, which the VM runs its own way", n.Name)
	}
	c.unsupported(n, "the builtin %s", n.Name)
	return nil
}

func (c *compiler) arity(n *ast.BuiltinNode, lo, hi int) {
	if len(n.Arguments) < lo || len(n.Arguments) > hi {
		c.unsupported(n, "%s with %d arguments", n.Name, len(n.Arguments))
	}
}

// minMax is expr's min and max over numbers given as arguments: the first
// of equal values is kept, and the result keeps its type (max(1, 1.0) is
// the int 1). A list argument, which expr walks, is left to the VM.
func (c *compiler) minMax(n *ast.BuiltinNode) eval {
	if len(n.Arguments) == 0 {
		c.unsupported(n, "%s of nothing", n.Name)
	}
	args := make([]eval, len(n.Arguments))
	for i, a := range n.Arguments {
		args[i] = c.compile(a)
	}
	isMax := n.Name == "max"
	return func(f *frame) value {
		var best value
		for i, a := range args {
			v := a(f)
			if !v.isNumber() {
				f.bail(n.Name + " of " + v.k.String())
			}
			if i == 0 {
				best = v
				continue
			}
			// max replaces the best when best < v, min when best > v.
			var replace bool
			if isMax {
				replace, _ = less(best, v)
			} else {
				replace, _ = less(v, best)
			}
			if replace {
				best = v
			}
		}
		return best
	}
}

// loop compiles the builtins that walk a list with a predicate, as expr's
// compiler emits them; each visit ticks the clock.
func (c *compiler) loop(n *ast.BuiltinNode) eval {
	switch n.Name {
	case "reduce":
		c.arity(n, 2, 3)
	default:
		c.arity(n, 2, 2)
	}
	if n.Map != nil {
		c.unsupported(n, "%s fused with map", n.Name)
	}
	list := c.compile(n.Arguments[0])
	var init eval
	if len(n.Arguments) == 3 {
		// The VM evaluates the initial value in the reduce's own scope,
		// where # is not yet an element: left to it.
		if ast.Find(n.Arguments[2], func(m ast.Node) bool { _, ok := m.(*ast.PointerNode); return ok }) != nil {
			c.unsupported(n, "a # in reduce's initial value")
		}
		init = c.compile(n.Arguments[2])
	}
	pn, ok := n.Arguments[1].(*ast.PredicateNode)
	if !ok {
		c.unsupported(n, "%s without a predicate", n.Name)
	}
	p := predicate{elem: c.slot(), acc: c.slot(), index: c.slot()}
	c.preds = append(c.preds, p)
	depth := len(c.preds)
	c.depth = max(c.depth, depth)
	var pred eval
	var cond beval
	if n.Name == "reduce" || n.Name == "sum" {
		pred = c.compile(pn.Node)
	} else {
		cond = c.boolExpr(pn.Node)
	}

	usesIndex := c.preds[len(c.preds)-1].usesIndex
	c.preds = c.preds[:len(c.preds)-1]

	// enter makes element j of l the predicate's #, and j its #index.
	enter := func(f *frame, l value, j int) {
		f.tick()
		if l.k == kList {
			f.slots[p.elem] = value{k: kCand, i: f.elem(l, j)}
		} else {
			f.slots[p.elem] = element(f, l, j)
		}
		if usesIndex {
			f.slots[p.index] = intValue(j)
		}
	}
	// visit runs reduce's predicate on element j.
	visit := func(f *frame, l value, j int) value {
		enter(f, l, j)
		return pred(f)
	}
	// test runs a predicate that must give a bool on element j.
	test := func(f *frame, l value, j int) bool {
		enter(f, l, j)
		return cond(f)
	}
	begin := func(f *frame) (value, int) {
		l := list(f)
		size, ok := length(f, l)
		if !ok {
			f.bail(n.Name + " of " + l.k.String())
		}
		return l, size
	}

	switch n.Name {
	case "filter":
		return func(f *frame) value {
			l, size := begin(f)
			if l.k != kList {
				f.bail("filter of " + l.k.String())
			}
			matches := f.scratch[depth][:0]
			for j := range size {
				if test(f, l, j) {
					matches = append(matches, int32(f.elem(l, j)))
				}
			}
			f.scratch[depth] = matches
			f.grow(len(matches)) // the VM's OpArray, the one it counts in the subset
			off := len(f.arena)
			f.arena = append(f.arena, matches...)
			return value{k: kList, i: off, n: len(matches)}
		}
	case "all", "any", "none":
		// all stops at the first false, any at the first true, none at
		// the first true; each is true when it does not stop.
		stopOn := n.Name != "all"
		return func(f *frame) value {
			l, size := begin(f)
			for j := range size {
				if test(f, l, j) == stopOn {
					return boolValue(n.Name == "any")
				}
			}
			return boolValue(n.Name != "any")
		}
	case "one", "count":
		var threshold = -1
		if n.Threshold != nil {
			threshold = *n.Threshold
		}
		one := n.Name == "one"
		return func(f *frame) value {
			l, size := begin(f)
			count := 0
			for j := range size {
				if test(f, l, j) {
					count++
					if threshold >= 0 && count >= threshold {
						break
					}
				}
			}
			if one {
				return boolValue(count == 1)
			}
			return intValue(count)
		}
	case "find", "findIndex":
		index := n.Name == "findIndex"
		throws := n.Throws && !index
		return func(f *frame) value {
			l, size := begin(f)
			for j := range size {
				if test(f, l, j) {
					if index {
						return intValue(j)
					}
					return element(f, l, j)
				}
			}
			if throws {
				f.bail("find of nothing, which the VM reports")
			}
			return nilValue
		}
	case "sum":
		// The VM adds each value to the sum so far, from the int 0, as
		// its + does: ints wrap, a float makes the sum a float.
		return func(f *frame) value {
			l, size := begin(f)
			acc := intValue(0)
			for j := range size {
				var ok bool
				if acc, ok = arith('+', visit(f, l, j), acc); !ok {
					f.bail("sum of non-numbers")
				}
			}
			return acc
		}
	case "reduce":
		return func(f *frame) value {
			l, size := begin(f)
			start := 0
			if init != nil {
				f.slots[p.acc] = init(f)
			} else {
				if size == 0 {
					f.bail("reduce of an empty list, which the VM reports")
				}
				f.slots[p.acc] = element(f, l, 0)
				start = 1
			}
			for j := start; j < size; j++ {
				f.slots[p.acc] = visit(f, l, j)
			}
			return f.slots[p.acc]
		}
	}
	c.unsupported(n, "the builtin %s", n.Name)
	return nil
}
