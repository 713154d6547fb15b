package luafast

import (
	"fmt"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
)

// Unsupported says why a chunk is outside the subset; the runtime then
// runs it in the interpreter only.
type Unsupported struct {
	Line   int // 1-based; 0 when it concerns the whole chunk
	Reason string
}

// Error implements error.
func (u *Unsupported) Error() string {
	if u.Line > 0 {
		return fmt.Sprintf("luafast: line %d: %s", u.Line, u.Reason)
	}
	return "luafast: " + u.Reason
}

// The compiled forms: a statement says how control leaves it, an
// expression gives one value.
type (
	stmt func(f *frame) flow
	expr func(f *frame) value
)

type flow uint8

const (
	flowNext flow = iota
	flowBreak
	flowReturn
)

// maxTargets bounds the names of one assignment, which are assigned from
// a buffer on the stack.
const maxTargets = 8

// The parameters the interpreter passes route, in their slots.
const paramCount = 3

// Compile compiles chunk, a parsed chunk that passed the name check, to a
// Route, or returns an [*Unsupported] saying why it is outside the subset.
func Compile(chunk []ast.Stmt) (r *Route, err error) {
	defer func() {
		if p := recover(); p != nil {
			r, err = nil, &Unsupported{Reason: fmt.Sprintf("compiler fault: %v", p)}
		}
	}()
	consts := map[string]value{}
	var route *ast.FunctionExpr
	var routeConsts map[string]value
	for _, s := range chunk {
		switch s := s.(type) {
		case *ast.LocalAssignStmt:
			if len(s.Exprs) > len(s.Names) {
				return nil, unsupported(s, "a top-level local with more values than names")
			}
			for i, name := range s.Names {
				v := nilValue
				if i < len(s.Exprs) {
					var ok bool
					if v, ok = literal(s.Exprs[i]); !ok {
						return nil, unsupported(s, "a top-level local that is not a literal")
					}
				}
				consts[name] = v
			}
		case *ast.FuncDefStmt:
			id, ok := s.Name.Func.(*ast.IdentExpr)
			if !ok || s.Name.Receiver != nil || id.Value != "route" {
				return nil, unsupported(s, "a top-level function other than route")
			}
			if _, shadowed := consts["route"]; shadowed {
				return nil, unsupported(s, "route is a local")
			}
			if route != nil {
				return nil, unsupported(s, "route defined twice")
			}
			route, routeConsts = s.Func, clone(consts)
		default:
			return nil, unsupported(s, fmt.Sprintf("a top-level %T", s))
		}
	}
	if route == nil {
		return nil, &Unsupported{Reason: "no function route"}
	}
	if route.ParList.HasVargs {
		return nil, unsupported(route, "a route taking ...")
	}
	c := &compiler{consts: routeConsts, nslots: paramCount}
	c.block()
	for i, name := range route.ParList.Names {
		slot := i
		if i >= paramCount {
			slot = c.newSlot()
		}
		c.scopes[0][name] = slot
	}
	body, err := c.stmts(route.Stmts)
	if err != nil {
		return nil, err
	}
	return &Route{body: body, nslots: c.nslots, timed: c.loops}, nil
}

func clone(m map[string]value) map[string]value {
	out := make(map[string]value, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func unsupported(n ast.PositionHolder, reason string) *Unsupported {
	return &Unsupported{Line: n.Line(), Reason: reason}
}

// literal returns the value of a literal (or a negated number literal).
func literal(e ast.Expr) (value, bool) {
	switch e := e.(type) {
	case *ast.NilExpr:
		return nilValue, true
	case *ast.TrueExpr:
		return trueValue, true
	case *ast.FalseExpr:
		return falseValue, true
	case *ast.StringExpr:
		return str(e.Value), true
	case *ast.NumberExpr:
		n := float64(lua.LVAsNumber(lua.LString(e.Value)))
		if n == 0 && strings.Trim(e.Value, "0.xXeE+-") != "" {
			return nilValue, false // not a number gopher-lua reads: leave it to the interpreter
		}
		return num(n), true
	case *ast.UnaryMinusOpExpr:
		if v, ok := literal(e.Expr); ok && v.k == kNum && v.n != 0 { // -0: see compiler.expr
			return num(-v.n), true
		}
	}
	return nilValue, false
}

// compiler compiles the body of route: its locals are slots of the frame.
type compiler struct {
	consts map[string]value // the top-level locals route sees
	scopes []map[string]int // route's block scopes: name → slot
	nslots int
	loops  bool // route has a loop (while, repeat, for): its calls are timed
}

func (c *compiler) block()   { c.scopes = append(c.scopes, map[string]int{}) }
func (c *compiler) unblock() { c.scopes = c.scopes[:len(c.scopes)-1] }

func (c *compiler) newSlot() int {
	c.nslots++
	return c.nslots - 1
}

// declare makes name a new local in the innermost scope.
func (c *compiler) declare(name string) int {
	slot := c.newSlot()
	c.scopes[len(c.scopes)-1][name] = slot
	return slot
}

// local returns the slot of name, if it is one of route's locals.
func (c *compiler) local(name string) (int, bool) {
	for i := len(c.scopes) - 1; i >= 0; i-- {
		if slot, ok := c.scopes[i][name]; ok {
			return slot, true
		}
	}
	return 0, false
}

// global reports whether the identifier e names the global name: neither
// a local of route nor a top-level local.
func (c *compiler) global(e ast.Expr, name string) bool {
	id, ok := e.(*ast.IdentExpr)
	if !ok || id.Value != name {
		return false
	}
	if _, ok := c.local(name); ok {
		return false
	}
	_, ok = c.consts[name]
	return !ok
}
