package exprfast

import (
	"fmt"
	"reflect"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/conf"
)

// eval is a compiled expression.
type eval func(*frame) value

// Unsupported says why a script is outside the subset: the node, and what
// about it the fast path does not model.
type Unsupported struct {
	At  int // the node's offset in the script, in bytes
	Why string
}

// Error implements error.
func (u *Unsupported) Error() string {
	return fmt.Sprintf("exprfast: at offset %d: %s", u.At, u.Why)
}

// predicate is where a predicate's element, accumulator and index live,
// and whether it reads its index.
type predicate struct {
	elem, acc, index int
	usesIndex        bool
}

// local is a let variable in scope.
type local struct {
	name string
	slot int
}

// compiler turns nodes into evals.
type compiler struct {
	nslots int
	locals []local     // innermost last
	preds  []predicate // innermost last
	depth  int         // the deepest nesting of predicates seen
	zero   *float64    // the first float zero met, for float
}

// Compile compiles a checked and optimized expr program (vm.Program's
// Node) to Go closures, or says in an [*Unsupported] why it is outside the
// subset. budget is the VM's memory budget, which the compiled program
// counts against as the VM would and falls back past (0: expr's default, as
// the VM takes it).
func Compile(node ast.Node, budget uint) (p *Program, err error) {
	c := &compiler{}
	defer func() {
		if r := recover(); r != nil {
			u, ok := r.(*Unsupported)
			if !ok {
				u = &Unsupported{Why: fmt.Sprint(r)}
			}
			p, err = nil, u
		}
	}()
	body := c.compile(node)
	if budget == 0 { // as the VM takes it
		budget = conf.DefaultMemoryBudget
	}
	return &Program{body: body, nslots: max(c.nslots, 1), depth: c.depth, budget: budget, direct: directCalls(node)}, nil
}

// unsupported abandons the compilation: the script runs in the VM.
func (c *compiler) unsupported(n ast.Node, format string, args ...any) {
	panic(&Unsupported{At: n.Location().From, Why: fmt.Sprintf(format, args...)})
}

// float returns a float constant as the VM will read it. expr's compiler
// keeps one copy of equal constants, the first it meets, and -0.0 equals
// 0.0: a script's second zero is the sign of its first. The compiler meets
// constants in the order compile does.
func (c *compiler) float(v float64) float64 {
	if v != 0 {
		return v
	}
	if c.zero == nil {
		c.zero = &v
	}
	return *c.zero
}

func (c *compiler) slot() int {
	c.nslots++
	return c.nslots - 1
}

func (c *compiler) lookup(name string) (int, bool) {
	for i := len(c.locals) - 1; i >= 0; i-- {
		if c.locals[i].name == name {
			return c.locals[i].slot, true
		}
	}
	return 0, false
}

func (c *compiler) compile(n ast.Node) eval {
	switch n := n.(type) {
	case *ast.NilNode:
		return func(*frame) value { return nilValue }
	case *ast.IntegerNode:
		v := intValue(n.Value)
		if t := n.Type(); t != nil && t.Kind() != reflect.Int {
			if t.Kind() != reflect.Float64 {
				c.unsupported(n, "an integer of type %s", t)
			}
			v = floatValue(c.float(float64(n.Value))) // the checker made it a float
		}
		return func(*frame) value { return v }
	case *ast.FloatNode:
		v := floatValue(c.float(n.Value))
		return func(*frame) value { return v }
	case *ast.BoolNode:
		v := boolValue(n.Value)
		return func(*frame) value { return v }
	case *ast.StringNode:
		v := strValue(n.Value)
		return func(*frame) value { return v }
	case *ast.ConstantNode:
		return c.constant(n)
	case *ast.IdentifierNode:
		return c.identifier(n)
	case *ast.PointerNode:
		return c.pointer(n)
	case *ast.MemberNode:
		if c.isInt(n) {
			x := c.intExpr(n)
			return func(f *frame) value { return intValue(x(f)) }
		}
		return c.member(n)
	case *ast.ChainNode:
		return c.compile(n.Node)
	case *ast.UnaryNode:
		return c.unary(n)
	case *ast.BinaryNode:
		if c.isInt(n) {
			x := c.intExpr(n)
			return func(f *frame) value { return intValue(x(f)) }
		}
		switch n.Operator {
		case "<", ">", "<=", ">=", "==", "!=", "in":
			if c.isInt(n.Left) && c.isInt(n.Right) || n.Operator == "in" && c.isTags(n.Right) {
				b := c.boolExpr(n)
				return func(f *frame) value { return boolValue(b(f)) }
			}
		}
		return c.binary(n)
	case *ast.ConditionalNode:
		cond, yes, no := c.boolExpr(n.Cond), c.compile(n.Exp1), c.compile(n.Exp2)
		return func(f *frame) value {
			if cond(f) {
				return yes(f)
			}
			return no(f)
		}
	case *ast.VariableDeclaratorNode:
		s := c.slot()
		val := c.compile(n.Value)
		c.locals = append(c.locals, local{n.Name, s})
		body := c.compile(n.Expr)
		c.locals = c.locals[:len(c.locals)-1]
		return func(f *frame) value {
			f.slots[s] = val(f)
			return body(f)
		}
	case *ast.SequenceNode:
		if len(n.Nodes) == 0 {
			c.unsupported(n, "an empty sequence")
		}
		evals := make([]eval, len(n.Nodes))
		for i, m := range n.Nodes {
			evals[i] = c.compile(m)
		}
		return func(f *frame) value {
			for _, e := range evals[:len(evals)-1] {
				e(f)
			}
			return evals[len(evals)-1](f)
		}
	case *ast.BuiltinNode:
		return c.builtin(n)
	case *ast.CallNode:
		return c.call(n)
	}
	c.unsupported(n, "%T", n)
	return nil
}

// constant compiles what the optimizer folded: a scalar; a string-keyed set
// (from `x in ["a", "b"]`) only as the right of in, in binary.
func (c *compiler) constant(n *ast.ConstantNode) eval {
	var v value
	switch x := n.Value.(type) {
	case nil:
		v = nilValue
	case bool:
		v = boolValue(x)
	case int:
		v = intValue(x)
	case float64:
		v = floatValue(c.float(x))
	case string:
		v = strValue(x)
	default:
		c.unsupported(n, "a constant of type %T", x)
	}
	return func(*frame) value { return v }
}

func (c *compiler) identifier(n *ast.IdentifierNode) eval {
	if s, ok := c.lookup(n.Value); ok {
		return func(f *frame) value { return f.slots[s] }
	}
	switch n.Value {
	case "request":
		return func(*frame) value { return value{k: kReq} }
	case "candidates":
		return func(f *frame) value { return value{k: kList, i: -1, n: len(f.in.Sel.Candidates)} }
	case "excluded":
		return func(*frame) value { return value{k: kExcl} }
	}
	c.unsupported(n, "the name %s", n.Value)
	return nil
}

func (c *compiler) pointer(n *ast.PointerNode) eval {
	if len(c.preds) == 0 {
		c.unsupported(n, "# outside a predicate")
	}
	p := c.preds[len(c.preds)-1]
	var s int
	switch n.Name {
	case "":
		s = p.elem
	case "acc":
		s = p.acc
	case "index":
		s = p.index
		c.preds[len(c.preds)-1].usesIndex = true
	default:
		c.unsupported(n, "#%s", n.Name)
	}
	return func(f *frame) value { return f.slots[s] }
}
