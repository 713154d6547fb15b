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
var dispatchHelpers = []string{"has_tag", "json_decode", "least_loaded", "p2c", "random", "rendezvous", "with_tag"}

// removedMembers are the library functions the sandbox takes away.
var removedMembers = map[string]bool{"string.dump": true, "math.randomseed": true}

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
	out := map[string][]string{"dispatch": append(slices.Clone(dispatchHelpers), "concat")} // concat: what .. calls; not listed
	for _, lib := range []string{"string", "table", "math"} {
		var names []string
		if t, ok := L.GetGlobal(lib).(*lua.LTable); ok {
			t.ForEach(func(k, _ lua.LValue) {
				if s, ok := k.(lua.LString); ok && !dropped[lib+"."+string(s)] && !strings.HasPrefix(string(s), "__") {
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
	// token is the text to put the caret under on the line, if found.
	token string
	// unknown, when set, is a variable name to suggest a close one for;
	// the suggestion is worked out for the reported problem only.
	unknown string
}

// checkNames finds, before a script runs, the names that would be nil when
// it does: a global it reads but neither assigns anywhere nor gets from the
// sandbox (a misspelt local, say); a member of dispatch, string, table or
// math that the table does not have (dispatch.leastloaded); a field the
// request or a candidate does not have (r.regoin, c[1].inflight), where
// route's parameters are used as they come. It also refuses writes to what
// is read-only. expr scripts get the same checks from expr's compiler. It
// returns the first problem by line, or ok.
func checkNames(chunk []ast.Stmt) (nameProblem, bool) {
	c := &nameCheck{assigned: map[string]bool{}, reassigned: map[string]bool{}, declared: map[string]bool{}}
	c.findAssigned(chunk)
	c.push()
	c.stmts(chunk)
	if len(c.problems) == 0 {
		return nameProblem{}, true
	}
	slices.SortStableFunc(c.problems, func(a, b nameProblem) int { return a.line - b.line })
	p := c.problems[0]
	if p.unknown != "" {
		p.msg = c.unknownName(p.unknown)
	}
	return p, false
}

// valueKind is what the checker knows a local holds.
type valueKind int

const (
	plainValue valueKind = iota
	requestValue
	candidatesValue // route's list of candidates
	candidateValue  // one element of it
)

// requestFields and candidateFields are what scripts can read there.
var (
	requestFields   = []string{"activity_type", "attempt", "channel", "conversation_id", "input", "input_content_type", "namespace", "task_queue", "workflow_id"}
	candidateFields = []string{"available", "buffer_depth", "has_tag", "id", "in_flight", "max_in_flight", "tags"}
)

// sandboxRemoved are the standard names the sandbox takes away.
var sandboxRemoved = map[string]string{
	"next": "use pairs", "rawget": "", "rawset": "", "print": "a script has no output; return a worker id",
	"require": "", "module": "", "dofile": "", "loadfile": "", "load": "", "loadstring": "",
	"collectgarbage": "", "getfenv": "", "setfenv": "", "newproxy": "", "io": "", "os": "", "debug": "",
	"package": "", "coroutine": "", "channel": "", "_G": "", "gcinfo": "", "_printregs": "",
}

type nameCheck struct {
	scopes     []map[string]valueKind
	assigned   map[string]bool // globals the script assigns somewhere
	reassigned map[string]bool // every name assigned with = anywhere (a parameter given a new value, say)
	declared   map[string]bool // every local name declared anywhere, for suggestions
	routeDefs  int             // definitions of the global route
	routeRead  bool            // route is read as a value somewhere (called, kept)
	probing    bool            // the expression being walked tests whether a name exists
	problems   []nameProblem
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
	c.problems = append(c.problems, nameProblem{line: line, token: token, msg: fmt.Sprintf(format, args...)})
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
	c.stmts(f.Stmts)
	c.pop()
}

func (c *nameCheck) function(f *ast.FunctionExpr, extra ...string) {
	names := append(extra, f.ParList.Names...)
	if f.ParList.HasVargs {
		names = append(names, "arg") // gopher-lua's Lua 5.0 compatibility: arg holds the varargs
	}
	c.scoped(f.Stmts, names...)
}

func (c *nameCheck) exprs(es []ast.Expr) {
	for _, e := range es {
		c.expr(e)
	}
}

// kindOf says what e holds, as far as the checker knows.
func (c *nameCheck) kindOf(e ast.Expr) valueKind {
	switch e := e.(type) {
	case *ast.IdentExpr:
		k, _ := c.lookup(e.Value)
		return k
	case *ast.AttrGetExpr:
		if _, named := e.Key.(*ast.StringExpr); !named && c.kindOf(e.Object) == candidatesValue {
			return candidateValue // candidates[i]
		}
	}
	return plainValue
}

// library returns the name of the sandbox table e names (dispatch, string,
// table, math), or "".
func (c *nameCheck) library(e ast.Expr) string {
	id, ok := e.(*ast.IdentExpr)
	if !ok || c.local(id.Value) || c.assigned[id.Value] {
		return ""
	}
	if _, ok := libraryMembers()[id.Value]; ok {
		return id.Value
	}
	return ""
}

// member checks a read of key in what object holds.
func (c *nameCheck) member(line int, object ast.Expr, key string) {
	if lib := c.library(object); lib != "" {
		members := libraryMembers()[lib]
		if slices.Contains(members, key) {
			return
		}
		if removedMembers[lib+"."+key] {
			c.problem(line, key, "%s.%s is not available to routing scripts (the sandbox removes it)", lib, key)
			return
		}
		listed := members
		if lib == "dispatch" {
			listed = dispatchHelpers // without concat, what .. calls
		}
		c.problem(line, key, "%s has no %s%s (it has %s)", lib, key, didYouMean(key, listed), strings.Join(listed, ", "))
		return
	}
	switch c.kindOf(object) {
	case requestValue:
		if !slices.Contains(requestFields, key) {
			c.problem(line, key, "the request has no field %s%s (it has %s)", key, didYouMean(key, requestFields), strings.Join(requestFields, ", "))
		}
	case candidateValue:
		if !slices.Contains(candidateFields, key) {
			c.problem(line, key, "a candidate has no field %s%s (it has %s)", key, didYouMean(key, candidateFields), strings.Join(candidateFields, ", "))
		}
	}
}

// target checks an assignment to a field.
func (c *nameCheck) target(e ast.Expr) {
	get, ok := e.(*ast.AttrGetExpr)
	if !ok {
		c.expr(e)
		return
	}
	c.expr(get.Object)
	c.expr(get.Key)
	if lib := c.library(get.Object); lib != "" {
		c.problem(get.Line(), lib, "the %s table is read-only: keep your own functions in a local table", lib)
		return
	}
	switch c.kindOf(get.Object) {
	case requestValue:
		c.problem(get.Line(), "=", "the request is read-only: copy what you need into a local")
	case candidateValue, candidatesValue:
		c.problem(get.Line(), "=", "the candidates are read-only: copy what you need into a local table")
	}
}

// probe walks an expression that tests whether something exists: a
// condition, the left side of or, the operand of not, a comparison with
// nil. There a missing global or member is the point (if DEBUG then,
// table.unpack or unpack), not a mistake.
func (c *nameCheck) probe(e ast.Expr) {
	switch e := e.(type) {
	case *ast.IdentExpr, *ast.AttrGetExpr:
		was := c.probing
		c.probing = true
		c.expr(e)
		c.probing = was
	case *ast.LogicalOpExpr:
		c.probe(e.Lhs)
		c.probe(e.Rhs)
	case *ast.UnaryNotOpExpr:
		c.probe(e.Expr)
	case *ast.RelationalOpExpr:
		if e.Operator == "==" || e.Operator == "~=" {
			c.probe(e.Lhs)
			c.probe(e.Rhs)
			return
		}
		c.expr(e)
	default:
		c.expr(e)
	}
}

func (c *nameCheck) expr(e ast.Expr) {
	if c.probing {
		// Only the outermost name or member is a probe: what it is read
		// from must exist (a.b.c probes c, and checks a.b).
		c.probing = false
		defer func() { c.probing = true }()
		switch e := e.(type) {
		case *ast.IdentExpr:
			return
		case *ast.AttrGetExpr:
			c.expr(e.Object)
			c.expr(e.Key)
			if key, ok := e.Key.(*ast.StringExpr); ok && c.kindOf(e.Object) != plainValue {
				c.member(e.Line(), e.Object, key.Value) // a field of the request or a candidate is not probed for
			}
			return
		}
	}
	switch e := e.(type) {
	case *ast.IdentExpr:
		c.read(e)
	case *ast.AttrGetExpr:
		c.expr(e.Object)
		c.expr(e.Key)
		if key, ok := e.Key.(*ast.StringExpr); ok {
			c.member(e.Line(), e.Object, key.Value)
		}
	case *ast.FunctionExpr:
		c.function(e)
	case *ast.FuncCallExpr:
		if e.Func != nil {
			c.expr(e.Func)
		}
		if e.Receiver != nil {
			c.expr(e.Receiver)
			c.method(e)
		}
		c.exprs(e.Args)
	case *ast.LogicalOpExpr:
		if e.Operator == "or" {
			c.probe(e.Lhs) // x = table.unpack or unpack
		} else {
			c.expr(e.Lhs)
		}
		c.expr(e.Rhs)
	default: // tables and operators: what they hold
		c.exprs(subExprs(e))
	}
}

// method checks a call written receiver:method(...).
func (c *nameCheck) method(call *ast.FuncCallExpr) {
	if lib := c.library(call.Receiver); lib == "dispatch" && slices.Contains(dispatchHelpers, call.Method) && call.Method != "random" {
		c.problem(call.Line(), "dispatch:", "dispatch:%s passes the dispatch table as the first argument: call dispatch.%s(...)", call.Method, call.Method)
		return
	}
	switch c.kindOf(call.Receiver) {
	case requestValue:
		c.problem(call.Line(), call.Method, "the request has no methods: r:%s(...)", call.Method)
		return
	case candidateValue:
		if call.Method != "has_tag" {
			c.problem(call.Line(), call.Method, "a candidate's only method is has_tag, not %s", call.Method)
		}
		return
	}
	c.member(call.Line(), call.Receiver, call.Method)
}

// read checks a name read as a variable.
func (c *nameCheck) read(id *ast.IdentExpr) {
	name := id.Value
	if c.local(name) || c.assigned[name] || luaBaseAllowed[name] || name == "dispatch" {
		return
	}
	c.problems = append(c.problems, nameProblem{line: id.Line(), unknown: name, token: name})
}

// unknownName says why name is unknown, with a close name if there is one.
func (c *nameCheck) unknownName(name string) string {
	if why, removed := sandboxRemoved[name]; removed {
		if why != "" {
			why = ": " + why
		}
		return fmt.Sprintf("%s is not available to routing scripts (the sandbox removes it)%s", name, why)
	}
	var known []string
	for n := range c.declared {
		known = append(known, n)
	}
	for n := range luaBaseAllowed {
		known = append(known, n)
	}
	for n := range c.assigned {
		known = append(known, n)
	}
	known = append(known, "dispatch")
	sort.Strings(known)
	return fmt.Sprintf("unknown name %s%s: not a local in scope, a global the script assigns, or one the sandbox has", name, didYouMean(name, known))
}

// didYouMean returns ` (did you mean X?)` for the closest of names within
// two edits of name, or "".
func didYouMean(name string, names []string) string {
	best, bestD := "", 3
	if len(name) <= 4 {
		bestD = 2 // one edit at most: two would make any short name look close
	}
	if len(name) < 3 {
		return ""
	}
	for _, n := range names {
		if n == name {
			continue // a local of another block: not a suggestion
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the number of edits between a and b, in bytes, counting
// a swap of two neighbours as one (typos are often swaps).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// tokenColumn returns the 1-based column of token in line (as a whole word
// when it is one), or 0.
func tokenColumn(line, token string) int {
	if token == "" {
		return 0
	}
	word := true
	for _, r := range token {
		word = word && (r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}
	for from := 0; ; {
		i := strings.Index(line[from:], token)
		if i < 0 {
			return 0
		}
		i += from
		end := i + len(token)
		isWord := func(b byte) bool {
			return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
		}
		if !word || ((i == 0 || !isWord(line[i-1])) && (end == len(line) || !isWord(line[end]))) {
			return i + 1
		}
		from = end
	}
}
