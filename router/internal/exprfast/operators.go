package exprfast

import (
	"reflect"
	"slices"

	"github.com/expr-lang/expr/ast"
)

// unary compiles a unary operator (not, !, -, +).
func (c *compiler) unary(n *ast.UnaryNode) eval {
	x := c.compile(n.Node)
	switch n.Operator {
	case "!", "not":
		return func(f *frame) value {
			v := x(f)
			if v.k != kBool {
				f.bail("not of a non-bool")
			}
			return boolValue(v.i == 0)
		}
	case "-":
		return func(f *frame) value {
			v := x(f)
			switch v.k {
			case kInt:
				return intValue(-v.i)
			case kFloat:
				return floatValue(-v.f)
			}
			f.bail("- of a non-number")
			return nilValue
		}
	}
	c.unsupported(n, "the operator %s", n.Operator)
	return nil
}

func (c *compiler) binary(n *ast.BinaryNode) eval {
	if n.Operator == "in" {
		if set, ok := n.Right.(*ast.ConstantNode); ok {
			if m, ok := set.Value.(map[string]struct{}); ok {
				needle := c.compile(n.Left)
				return func(f *frame) value {
					v := needle(f)
					if v.k != kStr {
						f.bail("in a set of strings, a non-string")
					}
					_, ok := m[v.s]
					return boolValue(ok)
				}
			}
		}
	}
	l, r := c.compile(n.Left), c.compile(n.Right)
	switch op := n.Operator; op {
	case "&&", "and", "||", "or":
		or := op == "||" || op == "or"
		return func(f *frame) value {
			a := l(f)
			if a.k != kBool {
				f.bail("a logical operator on a non-bool")
			}
			if (a.i != 0) == or {
				return a
			}
			return r(f) // expr leaves the right side as it is
		}
	case "??":
		return func(f *frame) value {
			if a := l(f); a.k != kNil {
				return a
			}
			return r(f)
		}
	case "==", "!=":
		ne := op == "!="
		// Where the checker typed both sides int, or both string, expr's
		// compiler emits OpEqualInt or OpEqualString, which fail on a
		// value of another type (a nil from first(excluded), the int 0 a
		// sum of strings over nothing is): those fall back.
		var want kind
		switch lk, rk := staticKind(n.Left), staticKind(n.Right); {
		case lk == reflect.Int && rk == reflect.Int:
			want = kInt
		case lk == reflect.String && rk == reflect.String:
			want = kStr
		}
		return func(f *frame) value {
			a, b := l(f), r(f)
			if want != kNil && (a.k != want || b.k != want) {
				f.bail("a typed == given another type")
			}
			eq, ok := equal(a, b)
			if !ok {
				f.bail("== of values it does not model")
			}
			return boolValue(eq != ne)
		}
	case "<", ">", "<=", ">=":
		return compare(op, l, r)
	case "+", "-", "*":
		b := op[0]
		return func(f *frame) value {
			v, ok := arith(b, l(f), r(f))
			if !ok {
				f.bail("arithmetic on non-numbers")
			}
			return v
		}
	case "/", "%", "**", "^":
		fn := divide
		switch op {
		case "%":
			fn = modulo
		case "**", "^":
			fn = power
		}
		return func(f *frame) value {
			v, ok := fn(l(f), r(f))
			if !ok {
				f.bail("arithmetic it does not model")
			}
			return v
		}
	case "contains", "startsWith", "endsWith":
		return func(f *frame) value {
			v, ok := stringOp(op, l(f), r(f))
			if !ok {
				f.bail(op + " on non-strings")
			}
			return v
		}
	case "in":
		return func(f *frame) value {
			needle, list := l(f), r(f)
			var tags []string
			switch list.k {
			case kTags:
				tags = f.in.Sel.Candidates[list.i].State.Tags
			case kExcl:
				tags = f.in.Sel.Excluded
			default:
				f.bail("in of " + list.k.String())
			}
			if needle.k != kStr {
				// runtime.In compares with Equal: a string never equals
				// a value of another type.
				if !needle.scalar() {
					f.bail("in of a non-scalar")
				}
				return falseValue
			}
			return boolValue(slices.Contains(tags, needle.s))
		}
	}
	c.unsupported(n, "the operator %s", n.Operator)
	return nil
}

// staticKind is the kind the checker gave n, as expr's compiler reads it
// to choose a typed opcode: Invalid when it has no type or a named one.
func staticKind(n ast.Node) reflect.Kind {
	t := n.Type()
	if t == nil || t.PkgPath() != "" {
		return reflect.Invalid
	}
	return t.Kind()
}

// compare is expr's <, >, <= and >=, on numbers (an int and a float as
// float64) and on strings.
func compare(op string, l, r eval) eval {
	return func(f *frame) value {
		a, b := l(f), r(f)
		var res bool
		switch {
		case a.k == kInt && b.k == kInt:
			res = cmpOrdered(op, a.i, b.i)
		case a.isNumber() && b.isNumber():
			res = cmpOrdered(op, a.float(), b.float())
		case a.k == kStr && b.k == kStr:
			res = cmpOrdered(op, a.s, b.s)
		default:
			f.bail("an ordering of values it does not model")
		}
		return boolValue(res)
	}
}

func cmpOrdered[T int | float64 | string](op string, a, b T) bool {
	switch op {
	case "<":
		return a < b
	case ">":
		return a > b
	case "<=":
		return a <= b
	}
	return a >= b
}
