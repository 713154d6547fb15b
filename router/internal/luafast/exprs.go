package luafast

import (
	"fmt"
	"math"

	"github.com/yuin/gopher-lua/ast"
)

// expr compiles an expression of the subset, or says why it is not in it.
func (c *compiler) expr(e ast.Expr) (expr, error) {
	if n, ok := constNumber(e); ok && n == 0 && math.Signbit(n) {
		// gopher-lua folds it to a constant, and its constant pool keeps
		// one zero per function, whichever sign came first: the
		// interpreter decides.
		return nil, unsupported(e, "a constant negative zero")
	}
	if v, ok := literal(e); ok {
		return func(*frame) value { return v }, nil
	}
	switch e := e.(type) {
	case *ast.IdentExpr:
		if slot, ok := c.local(e.Value); ok {
			return func(f *frame) value { return f.slots[slot] }, nil
		}
		if v, ok := c.consts[e.Value]; ok {
			return func(*frame) value { return v }, nil
		}
		return nil, unsupported(e, "the global "+e.Value+" read as a value")
	case *ast.AttrGetExpr:
		return c.attrGet(e)
	case *ast.FuncCallExpr:
		return c.call(e)
	case *ast.LogicalOpExpr:
		lhs, rhs, err := c.pair(e.Lhs, e.Rhs)
		if err != nil {
			return nil, err
		}
		if e.Operator == "and" {
			return func(f *frame) value {
				if v := lhs(f); !truthy(v) {
					return v
				}
				return rhs(f)
			}, nil
		}
		return func(f *frame) value {
			if v := lhs(f); truthy(v) {
				return v
			}
			return rhs(f)
		}, nil
	case *ast.RelationalOpExpr:
		x, err := c.relational(e)
		if err != nil {
			return nil, err
		}
		return func(f *frame) value { return boolean(x(f)) }, nil
	case *ast.ArithmeticOpExpr, *ast.UnaryMinusOpExpr:
		x, err := c.num(e)
		if err != nil {
			return nil, err
		}
		return func(f *frame) value { return num(x(f)) }, nil
	case *ast.UnaryNotOpExpr:
		x, err := c.cond(e.Expr)
		if err != nil {
			return nil, err
		}
		return func(f *frame) value { return boolean(!x(f)) }, nil
	case *ast.UnaryLenOpExpr:
		x, err := c.expr(e.Expr)
		if err != nil {
			return nil, err
		}
		return func(f *frame) value { return length(f, x(f)) }, nil
	}
	return nil, unsupported(e, fmt.Sprintf("a %T", e))
}

func (c *compiler) pair(a, b ast.Expr) (expr, expr, error) {
	x, err := c.expr(a)
	if err != nil {
		return nil, nil, err
	}
	y, err := c.expr(b)
	if err != nil {
		return nil, nil, err
	}
	return x, y, nil
}

// attrGet compiles obj.name and obj[key]; a constant name is resolved now.
func (c *compiler) attrGet(e *ast.AttrGetExpr) (expr, error) {
	if c.global(e.Object, "math") || c.global(e.Object, "dispatch") {
		return nil, unsupported(e, "a library member read as a value")
	}
	obj, err := c.expr(e.Object)
	if err != nil {
		return nil, err
	}
	objSlot, objLocal := -1, false
	if id, ok := e.Object.(*ast.IdentExpr); ok {
		objSlot, objLocal = c.local(id.Value)
	}
	key, ok := e.Key.(*ast.StringExpr)
	if !ok {
		if id, ok := e.Key.(*ast.IdentExpr); ok && objLocal {
			if keySlot, ok := c.local(id.Value); ok {
				// list[i], both locals: the loop over the candidates by index.
				return func(f *frame) value {
					o, k := f.slots[objSlot], f.slots[keySlot]
					if o.k == kCands && k.k == kNum {
						if i, ok := listIndex(k.n, len(f.in.Sel.Candidates)); ok {
							return value{k: kCand, i: int32(i)}
						}
					}
					return index(f, o, k)
				}, nil
			}
		}
		k, err := c.expr(e.Key)
		if err != nil {
			return nil, err
		}
		return func(f *frame) value { o := obj(f); return index(f, o, k(f)) }, nil
	}
	name, kv := key.Value, str(key.Value)
	fd := candFields[name]
	if fd == fieldLabels {
		return nil, unsupported(e, "a candidate's labels")
	}
	if objLocal {
		return func(f *frame) value {
			o := f.slots[objSlot]
			if o.k == kCand {
				return candidateField(f, o.i, fd)
			}
			return index(f, o, kv)
		}, nil
	}
	return func(f *frame) value {
		o := obj(f)
		if o.k == kCand {
			return candidateField(f, o.i, fd)
		}
		return index(f, o, kv)
	}, nil
}

// constNumber returns the value of a number expression gopher-lua folds
// at compile time (number literals, and unary minus and arithmetic on
// them), as Lua computes it; ok is false for any other expression.
func constNumber(e ast.Expr) (float64, bool) {
	switch e := e.(type) {
	case *ast.NumberExpr:
		v, ok := literal(e)
		return v.n, ok && v.k == kNum
	case *ast.UnaryMinusOpExpr:
		n, ok := constNumber(e.Expr)
		return -n, ok
	case *ast.ArithmeticOpExpr:
		a, aok := constNumber(e.Lhs)
		b, bok := constNumber(e.Rhs)
		if !aok || !bok {
			return 0, false
		}
		switch e.Operator {
		case "+":
			return a + b, true
		case "-":
			return a - b, true
		case "*":
			return a * b, true
		case "/":
			return a / b, true
		case "%":
			return a - math.Floor(a/b)*b, true
		case "^":
			return math.Pow(a, b), true
		}
	}
	return 0, false
}
