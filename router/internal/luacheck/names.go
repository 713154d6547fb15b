package luacheck

import (
	"fmt"
	"slices"

	"github.com/yuin/gopher-lua/ast"
)

// Problem is a name a script reads that cannot exist when it runs.
type Problem struct {
	Line    int    // 1-based
	Message string // what is wrong, in the script's terms
	// Token is the text to put the caret under on the line, if found.
	Token string
	// unknown, when set, is a variable name to suggest a close one for,
	// once the whole script has been walked (a local declared later is a
	// suggestion too).
	unknown string
}

// Names finds, before a script runs, the names that would be nil when
// it does, and the mistakes it can see in what a script passes and returns: a global it reads but neither assigns anywhere nor gets from the
// sandbox (a misspelt local, say); a member of dispatch, string, table or
// math that the table does not have (dispatch.leastloaded); a field the
// request or a candidate does not have (r.regoin, c[1].inflight), where
// route's parameters are used as they come. It also refuses writes to what
// is read-only. It refuses an argument of a helper or a candidate's method
// whose type it can see and the table of names does not allow
// (dispatch.least_loaded(42), c:has_tag(1)), and a value route returns
// that can never be a worker id (return 42, return {}, return candidates).
// expr scripts get the same checks from package exprrt. It
// returns every problem, by line (in the order the check met them on a
// line), each once; none when the names are fine.
func Names(chunk []ast.Stmt) []Problem {
	c := &nameCheck{assigned: map[string]bool{}, reassigned: map[string]bool{}, declared: map[string]bool{}}
	c.findAssigned(chunk)
	c.push()
	c.stmts(chunk)
	slices.SortStableFunc(c.problems, func(a, b Problem) int { return a.Line - b.Line })
	var out []Problem
	for _, p := range c.problems {
		if p.unknown != "" {
			p.Message = c.unknownName(p.unknown)
			p.unknown = ""
		}
		if !slices.Contains(out, p) { // a name read twice on a line is one problem: the caret can only point at the first
			out = append(out, p)
		}
	}
	return out
}

// valueKind is what the checker knows a local holds.
type valueKind int

const (
	plainValue valueKind = iota
	requestValue
	candidatesValue // route's list of candidates
	candidateValue  // one element of it
)

type nameCheck struct {
	scopes     []map[string]valueKind
	assigned   map[string]bool // globals the script assigns somewhere
	reassigned map[string]bool // every name assigned with = anywhere (a parameter given a new value, say)
	declared   map[string]bool // every local name declared anywhere, for suggestions
	routeDefs  int             // definitions of the global route
	routeRead  bool            // route is read as a value somewhere (called, kept)
	probing    bool            // the expression being walked tests whether a name exists
	inRoute    bool            // the statements being walked are the checked route function's own (not a nested function's)
	problems   []Problem
}

func (c *nameCheck) push() { c.scopes = append(c.scopes, map[string]valueKind{}) }
func (c *nameCheck) pop()  { c.scopes = c.scopes[:len(c.scopes)-1] }
func (c *nameCheck) declare(names ...string) {
	for _, n := range names {
		c.scopes[len(c.scopes)-1][n] = plainValue
		c.declared[n] = true
	}
}

// declareKind declares name as holding a value of kind, unless the script
// assigns to that name anywhere (then it may hold anything).
func (c *nameCheck) declareKind(name string, kind valueKind) {
	c.declare(name)
	if !c.reassigned[name] {
		c.scopes[len(c.scopes)-1][name] = kind
	}
}

// lookup finds name among the locals in scope.
func (c *nameCheck) lookup(name string) (valueKind, bool) {
	for i := len(c.scopes) - 1; i >= 0; i-- {
		if k, ok := c.scopes[i][name]; ok {
			return k, true
		}
	}
	return plainValue, false
}

func (c *nameCheck) local(name string) bool {
	_, ok := c.lookup(name)
	return ok
}

func (c *nameCheck) problem(line int, token, format string, args ...any) {
	c.problems = append(c.problems, Problem{Line: line, Token: token, Message: fmt.Sprintf(format, args...)})
}

// findAssigned collects every global name the chunk assigns, at any depth:
// a function may assign a global another one reads. It over-approximates
// (a name assigned where a local shadows it counts too), which can only
// hide a problem, never invent one.
func (c *nameCheck) findAssigned(stmts []ast.Stmt) {
	var walk func(stmts []ast.Stmt)
	exprs := func(es []ast.Expr) {
		for _, e := range es {
			eachFunction(e, func(f *ast.FunctionExpr) { walk(f.Stmts) }, func(id *ast.IdentExpr) {
				if id.Value == "route" {
					c.routeRead = true
				}
			})
		}
	}
	walk = func(stmts []ast.Stmt) {
		for _, s := range stmts {
			switch s := s.(type) {
			case *ast.AssignStmt:
				for _, l := range s.Lhs {
					if id, ok := l.(*ast.IdentExpr); ok {
						c.assigned[id.Value] = true
						c.reassigned[id.Value] = true
						if id.Value == "route" {
							c.routeDefs++
						}
					}
				}
				exprs(s.Lhs)
				exprs(s.Rhs)
			case *ast.FuncDefStmt:
				if id, ok := s.Name.Func.(*ast.IdentExpr); ok {
					c.assigned[id.Value] = true
					if id.Value == "route" {
						c.routeDefs++
					}
				}
				walk(s.Func.Stmts)
			case *ast.LocalAssignStmt:
				exprs(s.Exprs)
			case *ast.FuncCallStmt:
				exprs([]ast.Expr{s.Expr})
			case *ast.DoBlockStmt:
				walk(s.Stmts)
			case *ast.WhileStmt:
				exprs([]ast.Expr{s.Condition})
				walk(s.Stmts)
			case *ast.RepeatStmt:
				walk(s.Stmts)
				exprs([]ast.Expr{s.Condition})
			case *ast.IfStmt:
				exprs([]ast.Expr{s.Condition})
				walk(s.Then)
				walk(s.Else)
			case *ast.NumberForStmt:
				exprs([]ast.Expr{s.Init, s.Limit, s.Step})
				walk(s.Stmts)
			case *ast.GenericForStmt:
				exprs(s.Exprs)
				walk(s.Stmts)
			case *ast.ReturnStmt:
				exprs(s.Exprs)
			}
		}
	}
	walk(stmts)
}

// eachFunction calls fn for every function literal in e, outermost first,
// without entering their bodies (fn does that), and ident for every name e
// reads outside them.
func eachFunction(e ast.Expr, fn func(*ast.FunctionExpr), ident func(*ast.IdentExpr)) {
	switch e := e.(type) {
	case *ast.IdentExpr:
		ident(e)
	case *ast.FunctionExpr:
		fn(e)
	default:
		for _, sub := range subExprs(e) {
			eachFunction(sub, fn, ident)
		}
	}
}

func (c *nameCheck) stmts(stmts []ast.Stmt) {
	for _, s := range stmts {
		c.stmt(s)
	}
}

// scoped walks stmts in a new scope that starts with names.
func (c *nameCheck) scoped(stmts []ast.Stmt, names ...string) {
	c.push()
	c.declare(names...)
	c.stmts(stmts)
	c.pop()
}

func (c *nameCheck) stmt(s ast.Stmt) {
	switch s := s.(type) {
	case *ast.AssignStmt:
		c.exprs(s.Rhs)
		for _, l := range s.Lhs {
			if _, ok := l.(*ast.IdentExpr); !ok {
				c.target(l)
			}
		}
	case *ast.LocalAssignStmt:
		if len(s.Names) == 1 && len(s.Exprs) == 1 {
			if _, ok := s.Exprs[0].(*ast.FunctionExpr); ok {
				c.declare(s.Names[0]) // local function f: f is in scope in its body
			}
		}
		c.exprs(s.Exprs)
		c.declare(s.Names...)
	case *ast.FuncDefStmt:
		switch {
		case s.Name.Receiver != nil: // function a:b()
			c.target(&ast.AttrGetExpr{Object: s.Name.Receiver, Key: &ast.StringExpr{Value: s.Name.Method}})
			c.function(s.Func, "self")
			return
		default:
			if id, ok := s.Name.Func.(*ast.IdentExpr); !ok {
				c.target(s.Name.Func) // function a.b() writes a.b
			} else if id.Value == "route" && !c.local("route") {
				c.route(s.Func)
				return
			}
		}
		c.function(s.Func)
	case *ast.FuncCallStmt:
		c.expr(s.Expr)
	case *ast.DoBlockStmt:
		c.scoped(s.Stmts)
	case *ast.WhileStmt:
		c.probe(s.Condition)
		c.scoped(s.Stmts)
	case *ast.RepeatStmt:
		c.push() // until sees the body's locals
		c.stmts(s.Stmts)
		c.probe(s.Condition)
		c.pop()
	case *ast.IfStmt:
		c.probe(s.Condition)
		c.scoped(s.Then)
		c.scoped(s.Else)
	case *ast.NumberForStmt:
		c.expr(s.Init)
		c.expr(s.Limit)
		if s.Step != nil {
			c.expr(s.Step)
		}
		c.scoped(s.Stmts, s.Name)
	case *ast.GenericForStmt:
		c.exprs(s.Exprs)
		c.push()
		c.declare(s.Names...)
		// for _, w in ipairs(candidates): w is a candidate
		if len(s.Names) == 2 && len(s.Exprs) == 1 {
			if call, ok := s.Exprs[0].(*ast.FuncCallExpr); ok && len(call.Args) == 1 && c.kindOf(call.Args[0]) == candidatesValue {
				if f, ok := call.Func.(*ast.IdentExpr); ok && (f.Value == "ipairs" || f.Value == "pairs") && !c.local(f.Value) && !c.assigned[f.Value] {
					c.declareKind(s.Names[1], candidateValue)
				}
			}
		}
		c.stmts(s.Stmts)
		c.pop()
	case *ast.ReturnStmt:
		c.exprs(s.Exprs)
		if c.inRoute && len(s.Exprs) > 0 {
			c.returned(s.Line(), s.Exprs[0])
		}
	}
}

// route walks the route function, whose parameters are the request and the
// candidates, when nothing else can call it: defined once, never read as a
// value (a script that calls route itself, or wraps it, may pass anything).
func (c *nameCheck) route(f *ast.FunctionExpr) {
	names := f.ParList.Names
	if c.routeDefs != 1 || c.routeRead || len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(names) {
		c.function(f)
		return
	}
	c.push()
	c.declare(names...)
	if f.ParList.HasVargs {
		c.declare("arg")
	}
	if len(names) > 0 {
		c.declareKind(names[0], requestValue)
	}
	if len(names) > 1 {
		c.declareKind(names[1], candidatesValue)
	}
	was := c.inRoute
	c.inRoute = true
	c.stmts(f.Stmts)
	c.inRoute = was
	c.pop()
}

func (c *nameCheck) function(f *ast.FunctionExpr, extra ...string) {
	names := append(extra, f.ParList.Names...)
	if f.ParList.HasVargs {
		names = append(names, "arg") // gopher-lua's Lua 5.0 compatibility: arg holds the varargs
	}
	was := c.inRoute
	c.inRoute = false // a nested function's returns are not route's
	c.scoped(f.Stmts, names...)
	c.inRoute = was
}
