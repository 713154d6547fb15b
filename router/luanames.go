package router

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
)

// dispatchHelpers are the functions of the sandbox's dispatch table.
var dispatchHelpers = []string{"concat", "has_tag", "json_decode", "least_loaded", "p2c", "random", "rendezvous", "with_tag"}

// libraryMembers lists, per library table the sandbox keeps, the names it
// holds there (what gopher-lua's library has, less what the sandbox drops).
var libraryMembers = sync.OnceValue(func() map[string][]string {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, open := range []lua.LGFunction{lua.OpenBase, lua.OpenString, lua.OpenTable, lua.OpenMath} {
		L.Push(L.NewFunction(open))
		L.Call(0, 0)
	}
	dropped := map[string]bool{"string.dump": true, "math.randomseed": true}
	out := map[string][]string{"dispatch": dispatchHelpers}
	for _, lib := range []string{"string", "table", "math"} {
		var names []string
		if t, ok := L.GetGlobal(lib).(*lua.LTable); ok {
			t.ForEach(func(k, _ lua.LValue) {
				if s, ok := k.(lua.LString); ok && !dropped[lib+"."+string(s)] {
					names = append(names, string(s))
				}
			})
		}
		sort.Strings(names)
		out[lib] = names
	}
	return out
})

// nameProblem is a name a script reads that cannot exist when it runs.
type nameProblem struct {
	line int
	msg  string
}

// checkNames finds, before a script runs, the names that would be nil when
// it does: a global it reads but neither assigns anywhere nor gets from the
// sandbox (a misspelt local, say), and a member of dispatch, string, table
// or math that the table does not have (dispatch.leastloaded). expr scripts
// get the same check from expr's compiler. It returns the first problem by
// line, or ok.
func checkNames(chunk []ast.Stmt) (nameProblem, bool) {
	c := &nameCheck{assigned: map[string]bool{}}
	c.findAssigned(chunk)
	c.push()
	c.stmts(chunk)
	if len(c.problems) == 0 {
		return nameProblem{}, true
	}
	slices.SortStableFunc(c.problems, func(a, b nameProblem) int { return a.line - b.line })
	return c.problems[0], false
}

type nameCheck struct {
	scopes   []map[string]bool
	assigned map[string]bool // globals the script assigns somewhere
	problems []nameProblem
}

func (c *nameCheck) push() { c.scopes = append(c.scopes, map[string]bool{}) }
func (c *nameCheck) pop()  { c.scopes = c.scopes[:len(c.scopes)-1] }
func (c *nameCheck) declare(names ...string) {
	for _, n := range names {
		c.scopes[len(c.scopes)-1][n] = true
	}
}

func (c *nameCheck) local(name string) bool {
	for i := len(c.scopes) - 1; i >= 0; i-- {
		if c.scopes[i][name] {
			return true
		}
	}
	return false
}

// findAssigned collects every global name the chunk assigns, at any depth:
// a function may assign a global another one reads. It over-approximates
// (a name assigned where a local shadows it counts too), which can only
// hide a problem, never invent one.
func (c *nameCheck) findAssigned(stmts []ast.Stmt) {
	var expr func(e ast.Expr)
	var walk func(stmts []ast.Stmt)
	expr = func(e ast.Expr) {
		if f, ok := e.(*ast.FunctionExpr); ok {
			walk(f.Stmts)
		}
	}
	walk = func(stmts []ast.Stmt) {
		for _, s := range stmts {
			switch s := s.(type) {
			case *ast.AssignStmt:
				for _, l := range s.Lhs {
					if id, ok := l.(*ast.IdentExpr); ok {
						c.assigned[id.Value] = true
					}
				}
				for _, r := range s.Rhs {
					expr(r)
				}
			case *ast.FuncDefStmt:
				if id, ok := s.Name.Func.(*ast.IdentExpr); ok {
					c.assigned[id.Value] = true
				}
				walk(s.Func.Stmts)
			case *ast.LocalAssignStmt:
				for _, r := range s.Exprs {
					expr(r)
				}
			case *ast.DoBlockStmt:
				walk(s.Stmts)
			case *ast.WhileStmt:
				walk(s.Stmts)
			case *ast.RepeatStmt:
				walk(s.Stmts)
			case *ast.IfStmt:
				walk(s.Then)
				walk(s.Else)
			case *ast.NumberForStmt:
				walk(s.Stmts)
			case *ast.GenericForStmt:
				walk(s.Stmts)
			case *ast.ReturnStmt:
				for _, r := range s.Exprs {
					expr(r)
				}
			}
		}
	}
	walk(stmts)
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
				c.expr(l) // t.k = v reads t
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
			c.expr(s.Name.Receiver)
			c.function(s.Func, "self")
			return
		default:
			if _, ok := s.Name.Func.(*ast.IdentExpr); !ok {
				c.expr(s.Name.Func) // function a.b() reads a
			}
		}
		c.function(s.Func)
	case *ast.FuncCallStmt:
		c.expr(s.Expr)
	case *ast.DoBlockStmt:
		c.scoped(s.Stmts)
	case *ast.WhileStmt:
		c.expr(s.Condition)
		c.scoped(s.Stmts)
	case *ast.RepeatStmt:
		c.push() // until sees the body's locals
		c.stmts(s.Stmts)
		c.expr(s.Condition)
		c.pop()
	case *ast.IfStmt:
		c.expr(s.Condition)
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
		c.scoped(s.Stmts, s.Names...)
	case *ast.ReturnStmt:
		c.exprs(s.Exprs)
	}
}

func (c *nameCheck) function(f *ast.FunctionExpr, extra ...string) {
	names := append(extra, f.ParList.Names...)
	c.scoped(f.Stmts, names...)
}

func (c *nameCheck) exprs(es []ast.Expr) {
	for _, e := range es {
		c.expr(e)
	}
}

func (c *nameCheck) expr(e ast.Expr) {
	switch e := e.(type) {
	case *ast.IdentExpr:
		c.read(e)
	case *ast.AttrGetExpr:
		c.expr(e.Object)
		c.expr(e.Key)
		id, isIdent := e.Object.(*ast.IdentExpr)
		key, isString := e.Key.(*ast.StringExpr)
		if !isIdent || !isString || c.local(id.Value) || c.assigned[id.Value] {
			return
		}
		if members, ok := libraryMembers()[id.Value]; ok && !slices.Contains(members, key.Value) {
			c.problems = append(c.problems, nameProblem{line: e.Line(), msg: fmt.Sprintf("%s has no %s%s (it has %s)",
				id.Value, key.Value, didYouMean(key.Value, members), strings.Join(members, ", "))})
		}
	case *ast.FunctionExpr:
		c.function(e)
	case *ast.TableExpr:
		for _, f := range e.Fields {
			if f.Key != nil {
				c.expr(f.Key)
			}
			c.expr(f.Value)
		}
	case *ast.FuncCallExpr:
		if e.Func != nil {
			c.expr(e.Func)
		}
		if e.Receiver != nil {
			c.expr(e.Receiver)
		}
		c.exprs(e.Args)
	case *ast.LogicalOpExpr:
		c.expr(e.Lhs)
		c.expr(e.Rhs)
	case *ast.RelationalOpExpr:
		c.expr(e.Lhs)
		c.expr(e.Rhs)
	case *ast.ArithmeticOpExpr:
		c.expr(e.Lhs)
		c.expr(e.Rhs)
	case *ast.StringConcatOpExpr:
		c.expr(e.Lhs)
		c.expr(e.Rhs)
	case *ast.UnaryMinusOpExpr:
		c.expr(e.Expr)
	case *ast.UnaryNotOpExpr:
		c.expr(e.Expr)
	case *ast.UnaryLenOpExpr:
		c.expr(e.Expr)
	}
}

// read checks a name read as a variable.
func (c *nameCheck) read(id *ast.IdentExpr) {
	name := id.Value
	if c.local(name) || c.assigned[name] || luaBaseAllowed[name] || name == "dispatch" {
		return
	}
	var known []string
	for _, s := range c.scopes {
		for n := range s {
			known = append(known, n)
		}
	}
	for n := range luaBaseAllowed {
		known = append(known, n)
	}
	for n := range c.assigned {
		known = append(known, n)
	}
	known = append(known, "dispatch")
	sort.Strings(known)
	c.problems = append(c.problems, nameProblem{line: id.Line(), msg: fmt.Sprintf(
		"unknown name %s%s: not a local in scope, a global the script assigns, or one the sandbox has", name, didYouMean(name, known))})
}

// didYouMean returns ` (did you mean X?)` for the closest of names within
// two edits of name, or "".
func didYouMean(name string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(name), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
