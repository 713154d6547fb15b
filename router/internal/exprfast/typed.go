package exprfast

import (
	"reflect"
	"slices"

	"github.com/expr-lang/expr/ast"

	"github.com/aion-dispatch/dispatch/engine"
)

// Typed paths: an expression that can only be an int when it is not an
// error (a candidate's counter, an int literal, ints combined by + - * and
// min, max, abs, len) compiles to an ieval, and a condition to a beval, so
// that the arithmetic and comparisons of a policy pass no tagged values
// around. An ieval bails when what it reads is not what the VM would read
// as an int (a member of something not a candidate): the VM decides.

// ieval is a compiled expression whose value is an int.
type ieval func(*frame) int

// beval is a compiled expression whose value must be a bool.
type beval func(*frame) bool

// intCandFields are the candidate fields that are ints.
var intCandFields = map[string]field{
	"in_flight": fieldInFlight, "max_in_flight": fieldMaxInFlight,
	"buffer_depth": fieldBufferDepth, "available": fieldAvailable,
	"exits": fieldExits,
}

// isInt reports whether n, when it is not an error, is an int.
func (c *compiler) isInt(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return n.Type() == nil || n.Type().Kind() == reflect.Int
	case *ast.ConstantNode:
		_, ok := n.Value.(int)
		return ok
	case *ast.MemberNode:
		prop, ok := n.Property.(*ast.StringNode)
		if !ok || n.Optional || n.Method {
			return false
		}
		if _, ok := intCandFields[prop.Value]; ok {
			return true
		}
		return prop.Value == "attempt" && c.isRequest(n.Node)
	case *ast.UnaryNode:
		return n.Operator == "-" && c.isInt(n.Node)
	case *ast.BinaryNode:
		switch n.Operator {
		case "+", "-", "*":
			return c.isInt(n.Left) && c.isInt(n.Right)
		}
	case *ast.BuiltinNode:
		switch n.Name {
		case "min", "max", "abs":
			return len(n.Arguments) > 0 && !slices.ContainsFunc(n.Arguments, func(a ast.Node) bool { return !c.isInt(a) })
		}
	}
	return false
}

// isRequest reports whether n is the request (not a let of that name).
func (c *compiler) isRequest(n ast.Node) bool {
	id, ok := n.(*ast.IdentifierNode)
	if !ok || id.Value != "request" {
		return false
	}
	_, shadowed := c.lookup("request")
	return !shadowed
}

// isTags reports whether n is `X.tags`.
func (c *compiler) isTags(n ast.Node) bool {
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Optional || m.Method {
		return false
	}
	prop, ok := m.Property.(*ast.StringNode)
	return ok && prop.Value == "tags"
}

// slotOf returns the slot a pointer or a let reads, when n is one.
func (c *compiler) slotOf(n ast.Node) (int, bool) {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return c.lookup(n.Value)
	case *ast.PointerNode:
		if len(c.preds) == 0 {
			return 0, false
		}
		p := c.preds[len(c.preds)-1]
		switch n.Name {
		case "":
			return p.elem, true
		case "acc":
			return p.acc, true
		}
	}
	return 0, false
}

// intExpr compiles n, for which isInt holds.
func (c *compiler) intExpr(n ast.Node) ieval {
	switch n := n.(type) {
	case *ast.IntegerNode:
		v := n.Value
		return func(*frame) int { return v }
	case *ast.ConstantNode:
		v := n.Value.(int)
		return func(*frame) int { return v }
	case *ast.MemberNode:
		prop := n.Property.(*ast.StringNode).Value
		if prop == "attempt" && c.isRequest(n.Node) {
			return func(f *frame) int { return f.in.Sel.Attempt }
		}
		cf := intCandFields[prop]
		var obj eval
		s, direct := c.slotOf(n.Node)
		if !direct {
			obj = c.compile(n.Node)
		}
		// state returns the state of the candidate n.Node is.
		state := func(f *frame) *engine.ConsumerStateView {
			var o value
			if direct {
				o = f.slots[s]
			} else {
				o = obj(f)
			}
			if o.k != kCand {
				f.bail("a field of " + o.k.String())
			}
			return &f.in.Sel.Candidates[o.i].State
		}
		if direct { // the common case, #.in_flight, read without a call
			switch cf {
			case fieldInFlight:
				return func(f *frame) int {
					if o := &f.slots[s]; o.k == kCand {
						return f.in.Sel.Candidates[o.i].State.InFlight
					}
					return state(f).InFlight
				}
			case fieldMaxInFlight:
				return func(f *frame) int {
					if o := &f.slots[s]; o.k == kCand {
						return f.in.Sel.Candidates[o.i].State.MaxInFlight
					}
					return state(f).MaxInFlight
				}
			case fieldBufferDepth:
				return func(f *frame) int {
					if o := &f.slots[s]; o.k == kCand {
						return f.in.Sel.Candidates[o.i].State.BufferDepth
					}
					return state(f).BufferDepth
				}
			}
		}
		return func(f *frame) int {
			st := state(f)
			switch cf {
			case fieldInFlight:
				return st.InFlight
			case fieldMaxInFlight:
				return st.MaxInFlight
			case fieldBufferDepth:
				return st.BufferDepth
			case fieldExits:
				return st.Exits
			}
			return st.Available()
		}
	case *ast.UnaryNode:
		x := c.intExpr(n.Node)
		return func(f *frame) int { return -x(f) }
	case *ast.BinaryNode:
		l, r := c.intExpr(n.Left), c.intExpr(n.Right)
		switch n.Operator {
		case "+":
			return func(f *frame) int { return l(f) + r(f) }
		case "-":
			return func(f *frame) int { return l(f) - r(f) }
		}
		return func(f *frame) int { return l(f) * r(f) }
	case *ast.BuiltinNode:
		args := make([]ieval, len(n.Arguments))
		for i, a := range n.Arguments {
			args[i] = c.intExpr(a)
		}
		switch {
		case n.Name == "abs":
			x := args[0]
			return func(f *frame) int {
				v := x(f)
				if v < 0 {
					return -v
				}
				return v
			}
		case len(args) == 2 && n.Name == "max":
			a, b := args[0], args[1]
			return func(f *frame) int { return max(a(f), b(f)) }
		case len(args) == 2:
			a, b := args[0], args[1]
			return func(f *frame) int { return min(a(f), b(f)) }
		}
		isMax := n.Name == "max"
		return func(f *frame) int {
			best := args[0](f)
			for _, a := range args[1:] {
				if v := a(f); (isMax && v > best) || (!isMax && v < best) {
					best = v
				}
			}
			return best
		}
	}
	c.unsupported(n, "%T as an int", n)
	return nil
}

// boolExpr compiles n where a bool is required (a condition, a predicate,
// an operand of not, and, or): what is not a bool there makes the VM fail,
// so the call falls back.
func (c *compiler) boolExpr(n ast.Node) beval {
	switch n := n.(type) {
	case *ast.BoolNode:
		v := n.Value
		return func(*frame) bool { return v }
	case *ast.UnaryNode:
		if n.Operator == "!" || n.Operator == "not" {
			x := c.boolExpr(n.Node)
			return func(f *frame) bool { return !x(f) }
		}
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and":
			l, r := c.boolExpr(n.Left), c.boolExpr(n.Right)
			return func(f *frame) bool { return l(f) && r(f) }
		case "||", "or":
			l, r := c.boolExpr(n.Left), c.boolExpr(n.Right)
			return func(f *frame) bool { return l(f) || r(f) }
		case "<", ">", "<=", ">=", "==", "!=":
			if c.isInt(n.Left) && c.isInt(n.Right) {
				return intCompare(n.Operator, c.intExpr(n.Left), c.intExpr(n.Right))
			}
		case "in":
			if c.isTags(n.Right) {
				return c.tagIn(n.Left, n.Right.(*ast.MemberNode).Node)
			}
		}
	}
	e := c.compile(n)
	return func(f *frame) bool {
		v := e(f)
		if v.k != kBool {
			f.bail("a condition that is not a bool")
		}
		return v.i != 0
	}
}

// tagIn compiles `needle in obj.tags`.
func (c *compiler) tagIn(needle, obj ast.Node) beval {
	if lit, ok := needle.(*ast.StringNode); ok { // "gpu" in .tags
		tag := lit.Value
		if s, direct := c.slotOf(obj); direct {
			return func(f *frame) bool {
				cand := &f.slots[s]
				if cand.k != kCand {
					f.bail("the tags of " + cand.k.String())
				}
				return slices.Contains(f.in.Sel.Candidates[cand.i].State.Tags, tag)
			}
		}
	}
	nd := c.compile(needle)
	var o eval
	s, direct := c.slotOf(obj)
	if !direct {
		o = c.compile(obj)
	}
	return func(f *frame) bool {
		v := nd(f) // the needle first, as the VM evaluates them
		var cand value
		if direct {
			cand = f.slots[s]
		} else {
			cand = o(f)
		}
		if cand.k != kCand {
			f.bail("the tags of " + cand.k.String())
		}
		if v.k != kStr {
			f.bail("in with a needle that is not a string")
		}
		return slices.Contains(f.in.Sel.Candidates[cand.i].State.Tags, v.s)
	}
}

func intCompare(op string, l, r ieval) beval {
	switch op {
	case "<":
		return func(f *frame) bool { return l(f) < r(f) }
	case ">":
		return func(f *frame) bool { return l(f) > r(f) }
	case "<=":
		return func(f *frame) bool { return l(f) <= r(f) }
	case ">=":
		return func(f *frame) bool { return l(f) >= r(f) }
	case "==":
		return func(f *frame) bool { return l(f) == r(f) }
	}
	return func(f *frame) bool { return l(f) != r(f) }
}
