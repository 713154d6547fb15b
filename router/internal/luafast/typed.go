package luafast

import (
	"slices"

	"github.com/yuin/gopher-lua/ast"
)

// Typed forms of expressions, where the context fixes what is wanted: a
// number (an operand of arithmetic or of an ordering with a number) or a
// truth (a condition). They return float64 or bool rather than a value,
// which keeps the loops of a policy free of tagged unions. Evaluation
// order and short-circuiting are the interpreter's; any operand that is not
// what the context needs makes the call fall back, as the interpreter
// would raise an error there.
type (
	numExpr  func(f *frame) float64
	condExpr func(f *frame) bool
)

// numeric reports whether e always gives a number (or fails): arithmetic,
// a number literal, a length, or a math function.
func (c *compiler) numeric(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.NumberExpr, *ast.ArithmeticOpExpr, *ast.UnaryMinusOpExpr, *ast.UnaryLenOpExpr:
		return true
	case *ast.IdentExpr:
		if _, ok := c.local(e.Value); !ok {
			v, ok := c.consts[e.Value]
			return ok && v.k == kNum
		}
	case *ast.FuncCallExpr:
		if attr, ok := e.Func.(*ast.AttrGetExpr); ok && e.Receiver == nil {
			return c.global(attr.Object, "math")
		}
	}
	return false
}

// toNumber is v as an operand of arithmetic or of an ordering with a number.
func toNumber(f *frame, v value) float64 {
	if v.k != kNum {
		f.bail("a " + v.k.String() + " where a number is needed")
	}
	return v.n
}

// num compiles e where a number is needed.
func (c *compiler) num(e ast.Expr) (numExpr, error) {
	if v, ok := literal(e); ok && v.k == kNum {
		n := v.n
		return func(*frame) float64 { return n }, nil
	}
	switch e := e.(type) {
	case *ast.ArithmeticOpExpr:
		a, err := c.num(e.Lhs)
		if err != nil {
			return nil, err
		}
		b, err := c.num(e.Rhs)
		if err != nil {
			return nil, err
		}
		switch e.Operator {
		case "+":
			return func(f *frame) float64 { return a(f) + b(f) }, nil
		case "-":
			return func(f *frame) float64 { return a(f) - b(f) }, nil
		case "*":
			return func(f *frame) float64 { return a(f) * b(f) }, nil
		case "/":
			return func(f *frame) float64 { return a(f) / b(f) }, nil
		case "%":
			return func(f *frame) float64 { x := a(f); return modulo(x, b(f)) }, nil
		case "^":
			return func(f *frame) float64 { x := a(f); return pow(x, b(f)) }, nil
		}
		return nil, unsupported(e, "the operator "+e.Operator)
	case *ast.UnaryMinusOpExpr:
		x, err := c.num(e.Expr)
		if err != nil {
			return nil, err
		}
		return func(f *frame) float64 { return -x(f) }, nil
	case *ast.IdentExpr:
		if slot, ok := c.local(e.Value); ok {
			return func(f *frame) float64 { return toNumber(f, f.slots[slot]) }, nil
		}
	case *ast.AttrGetExpr:
		if key, ok := e.Key.(*ast.StringExpr); ok {
			if id, ok := e.Object.(*ast.IdentExpr); ok {
				if slot, ok := c.local(id.Value); ok {
					if fd := candFields[key.Value]; fd.numeric() {
						return numField(slot, fd, str(key.Value)), nil
					}
				}
			}
		}
	case *ast.FuncCallExpr:
		if attr, ok := e.Func.(*ast.AttrGetExpr); ok && e.Receiver == nil && c.global(attr.Object, "math") {
			if key, ok := attr.Key.(*ast.StringExpr); ok {
				return c.mathCall(e, key.Value)
			}
		}
	}
	x, err := c.expr(e)
	if err != nil {
		return nil, err
	}
	return func(f *frame) float64 { return toNumber(f, x(f)) }, nil
}

// numField reads a number field of the candidate in a local's slot.
func numField(slot int, fd candField, key value) numExpr {
	return func(f *frame) float64 {
		o := f.slots[slot]
		if o.k == kCand {
			st := &f.in.Sel.Candidates[o.i].State
			switch fd {
			case fieldInFlight:
				return float64(st.InFlight)
			case fieldMaxInFlight:
				return float64(st.MaxInFlight)
			case fieldBufferDepth:
				return float64(st.BufferDepth)
			case fieldLatencyEWMA:
				return st.LatencyEWMA
			case fieldLatencyPeakEWMA:
				return st.LatencyPeakEWMA
			case fieldErrorRate:
				return st.ErrorRate
			case fieldExits:
				return float64(st.Exits)
			default:
				return float64(st.Available())
			}
		}
		return toNumber(f, index(f, o, key))
	}
}

// branchCond compiles the condition of an if, elseif, while or repeat.
// gopher-lua compiles a literal in a condition (if false, x or nil, ...)
// specially, and in some programs wrongly: `if false then return a and b
// end` in a loop returns. The interpreter is authoritative, so such
// conditions stay with it; only `while true`, the idiom of a loop left by
// break or return, which gopher-lua compiles to no test at all, is
// compiled here.
func (c *compiler) branchCond(e ast.Expr, isWhile bool) (condExpr, error) {
	if _, ok := e.(*ast.TrueExpr); ok && isWhile {
		return func(*frame) bool { return true }, nil
	}
	if lit := literalCondition(e); lit != nil {
		return nil, unsupported(lit, "a literal in a condition, which gopher-lua compiles specially")
	}
	return c.cond(e)
}

// literalCondition returns the literal among the operands gopher-lua's
// compiler looks through in a condition (not, and, or), or nil.
func literalCondition(e ast.Expr) ast.Expr {
	switch e := e.(type) {
	case *ast.FalseExpr, *ast.NilExpr, *ast.TrueExpr, *ast.NumberExpr, *ast.StringExpr:
		return e
	case *ast.UnaryNotOpExpr:
		return literalCondition(e.Expr)
	case *ast.LogicalOpExpr:
		if lit := literalCondition(e.Lhs); lit != nil {
			return lit
		}
		return literalCondition(e.Rhs)
	}
	return nil
}

// cond compiles e where only its truth counts.
func (c *compiler) cond(e ast.Expr) (condExpr, error) {
	switch e := e.(type) {
	case *ast.RelationalOpExpr:
		return c.relational(e)
	case *ast.LogicalOpExpr:
		a, err := c.cond(e.Lhs)
		if err != nil {
			return nil, err
		}
		b, err := c.cond(e.Rhs)
		if err != nil {
			return nil, err
		}
		if e.Operator == "and" {
			return func(f *frame) bool { return a(f) && b(f) }, nil
		}
		return func(f *frame) bool { return a(f) || b(f) }, nil
	case *ast.UnaryNotOpExpr:
		x, err := c.cond(e.Expr)
		if err != nil {
			return nil, err
		}
		return func(f *frame) bool { return !x(f) }, nil
	case *ast.AttrGetExpr:
		// c.tags.NAME, the common test of a tag, read in place.
		if tags, ok := e.Object.(*ast.AttrGetExpr); ok {
			name, ok1 := e.Key.(*ast.StringExpr)
			field, ok2 := tags.Key.(*ast.StringExpr)
			id, ok3 := tags.Object.(*ast.IdentExpr)
			if ok1 && ok2 && ok3 && field.Value == "tags" {
				if slot, ok := c.local(id.Value); ok {
					tag, kv, tagsKey := name.Value, str(name.Value), str("tags")
					return func(f *frame) bool {
						o := f.slots[slot]
						if o.k == kCand {
							return slices.Contains(f.in.Sel.Candidates[o.i].State.Tags, tag)
						}
						return truthy(index(f, index(f, o, tagsKey), kv))
					}, nil
				}
			}
		}
	}
	x, err := c.expr(e)
	if err != nil {
		return nil, err
	}
	return func(f *frame) bool { return truthy(x(f)) }, nil
}

// relational compiles a comparison. An ordering with a side that is always
// a number compares numbers; == and ~= with nil test the other side's type.
func (c *compiler) relational(e *ast.RelationalOpExpr) (condExpr, error) {
	switch e.Operator {
	case "==", "~=":
		ne := e.Operator == "~="
		for _, sides := range [][2]ast.Expr{{e.Lhs, e.Rhs}, {e.Rhs, e.Lhs}} {
			if _, isNil := sides[1].(*ast.NilExpr); isNil {
				x, err := c.expr(sides[0])
				if err != nil {
					return nil, err
				}
				return func(f *frame) bool { return (x(f).k == kNil) != ne }, nil
			}
		}
		lhs, rhs, err := c.pair(e.Lhs, e.Rhs)
		if err != nil {
			return nil, err
		}
		return func(f *frame) bool { a := lhs(f); return equal(a, rhs(f)) != ne }, nil
	case "<", "<=", ">", ">=":
	default:
		return nil, unsupported(e, "the operator "+e.Operator)
	}
	if c.numeric(e.Lhs) || c.numeric(e.Rhs) {
		// The other side must be a number too: the interpreter fails on a
		// comparison of a number with anything else.
		a, err := c.num(e.Lhs)
		if err != nil {
			return nil, err
		}
		b, err := c.num(e.Rhs)
		if err != nil {
			return nil, err
		}
		switch e.Operator {
		case "<":
			return func(f *frame) bool { return a(f) < b(f) }, nil
		case "<=":
			return func(f *frame) bool { return a(f) <= b(f) }, nil
		case ">":
			return func(f *frame) bool { return a(f) > b(f) }, nil
		}
		return func(f *frame) bool { return a(f) >= b(f) }, nil
	}
	lhs, rhs, err := c.pair(e.Lhs, e.Rhs)
	if err != nil {
		return nil, err
	}
	// gopher-lua compiles a > b as b < a, evaluating a first.
	switch e.Operator {
	case "<":
		return func(f *frame) bool { a := lhs(f); return less(f, a, rhs(f)) }, nil
	case "<=":
		return func(f *frame) bool { a := lhs(f); return lessEqual(f, a, rhs(f)) }, nil
	case ">":
		return func(f *frame) bool { a := lhs(f); return less(f, rhs(f), a) }, nil
	}
	return func(f *frame) bool { a := lhs(f); return lessEqual(f, rhs(f), a) }, nil
}
