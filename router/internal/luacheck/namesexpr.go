package luacheck

import (
	"slices"
	"strings"

	"github.com/yuin/gopher-lua/ast"

	"github.com/aion-dispatch/dispatch/router/internal/names"
)

// The name check's walk of expressions: members, assignment targets,
// probes, method calls and reads of names.

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
		c.problem(line, key, "%s has no %s%s (it has %s)", lib, key, names.DidYouMean(key, listed), strings.Join(listed, ", "))
		return
	}
	switch c.kindOf(object) {
	case requestValue:
		if !slices.Contains(requestFields, key) {
			c.problem(line, key, "the request has no field %s%s (it has %s)", key, names.DidYouMean(key, requestFields), strings.Join(requestFields, ", "))
		}
	case candidateValue:
		if !slices.Contains(candidateFields, key) {
			c.problem(line, key, "a candidate has no field %s%s (it has %s)", key, names.DidYouMean(key, candidateFields), strings.Join(candidateFields, ", "))
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
		c.arity(e)
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
	// A helper that takes arguments gets the dispatch table as its first
	// (dispatch:random() is harmless: random takes none).
	if h, ok := names.LookupLua(names.Helper, call.Method); ok && !h.Hidden && h.MaxArgs > 0 && c.library(call.Receiver) == "dispatch" {
		c.problem(call.Line(), "dispatch:", "dispatch:%s passes the dispatch table as the first argument: call dispatch.%s(...)", call.Method, call.Method)
		return
	}
	switch c.kindOf(call.Receiver) {
	case requestValue:
		c.problem(call.Line(), call.Method, "the request has no methods: r:%s(...)", call.Method)
		return
	case candidateValue:
		if _, ok := names.LookupLua(names.CandidateMethod, call.Method); !ok {
			c.problem(call.Line(), call.Method, "a candidate's only %s, not %s", candidateMethods(), call.Method)
		}
		return
	}
	c.member(call.Line(), call.Receiver, call.Method)
}

// read checks a name read as a variable.
func (c *nameCheck) read(id *ast.IdentExpr) {
	name := id.Value
	if c.local(name) || c.assigned[name] || baseGlobals[name] || name == "dispatch" {
		return
	}
	c.problems = append(c.problems, Problem{Line: id.Line(), unknown: name, Token: name})
}

// candidateMethods names a candidate's methods, as in "method is has_tag".
func candidateMethods() string {
	ms := names.Lua(names.CandidateMethod, false)
	if len(ms) == 1 {
		return "method is " + ms[0]
	}
	return "methods are " + strings.Join(ms, ", ")
}

// callee returns the row of the table of names a call calls, and the
// name messages give it, when it calls a helper (dispatch.NAME(...)) or a
// candidate's method (c:has_tag(...)).
func (c *nameCheck) callee(call *ast.FuncCallExpr) (names.Name, string, bool) {
	if call.Receiver != nil {
		m, ok := names.LookupLua(names.CandidateMethod, call.Method)
		if !ok || c.kindOf(call.Receiver) != candidateValue {
			return names.Name{}, "", false
		}
		return m, call.Method, true
	}
	get, ok := call.Func.(*ast.AttrGetExpr)
	if !ok || c.library(get.Object) != "dispatch" {
		return names.Name{}, "", false
	}
	key, ok := get.Key.(*ast.StringExpr)
	if !ok {
		return names.Name{}, "", false
	}
	h, ok := names.LookupLua(names.Helper, key.Value)
	if !ok || h.Hidden {
		return names.Name{}, "", false
	}
	return h, "dispatch." + key.Value, true
}

// arity checks how many arguments a call of a helper (dispatch.NAME(...))
// or of a candidate's method (c:has_tag(...)) passes, against the table of
// names, and then the types of those the checker can see (argFits). A last argument that is a call or ... may pass any number of
// values, so then only the ones before it are counted, as the least it passes.
func (c *nameCheck) arity(call *ast.FuncCallExpr) {
	n, what, ok := c.callee(call)
	if !ok {
		return
	}
	got := len(call.Args)
	open := false
	if got > 0 {
		switch last := call.Args[got-1].(type) {
		case *ast.FuncCallExpr:
			open = !last.AdjustRet
		case *ast.Comma3Expr:
			open = !last.AdjustRet
		}
	}
	switch {
	case open && !n.Variadic && got-1 > n.MaxArgs:
		c.problem(call.Line(), what, "%s %s, got %d or more", what, n.Takes(), got-1)
		return
	case !open && !n.Accepts(got):
		c.problem(call.Line(), what, "%s %s, got %d", what, n.Takes(), got)
		return
	}
	for i, arg := range call.Args {
		if got, ok := c.argFits(n.Arg(i), arg); !ok {
			c.problem(call.Line(), what, "%s: argument %d must be %s, got %s", what, i+1, n.Arg(i), got)
		}
	}
}

// argFits reports whether arg may be passed where want is expected, as far
// as the checker can see, and if not, what arg is: a literal, an operator
// whose result has one type whatever its operands (a comparison, not,
// ..), or route's request, candidates or one candidate. Anything else passes.
func (c *nameCheck) argFits(want names.Arg, arg ast.Expr) (string, bool) {
	got := c.typeOf(arg)
	if got == "" {
		return "", true
	}
	switch want {
	case names.List:
		return got, got == "a list of candidates" || got == "a table" // a table built of candidates is a list
	case names.String:
		// Lua passes a number where a string is wanted as its text, and
		// the helpers take it so: refusing one would refuse a script that
		// runs.
		return got, got == "a string" || got == "a number"
	case names.Candidate:
		return got, got == "a candidate"
	case names.Number:
		// Unlike a string, a number is not taken as text: the helpers
		// refuse a numeric string, so the checker does.
		return got, got == "a number"
	}
	return got, true
}

// typeOf says what e is, when the checker can see it whatever runs: "a
// number", "the list of candidates"; "" when it cannot.
func (c *nameCheck) typeOf(e ast.Expr) string {
	switch e.(type) {
	case *ast.StringExpr, *ast.StringConcatOpExpr:
		return "a string"
	case *ast.NumberExpr:
		return "a number"
	case *ast.TrueExpr, *ast.FalseExpr, *ast.RelationalOpExpr, *ast.UnaryNotOpExpr:
		return "a boolean"
	case *ast.NilExpr:
		return "nil"
	case *ast.TableExpr:
		return "a table"
	case *ast.FunctionExpr:
		return "a function"
	}
	switch c.kindOf(e) {
	case requestValue:
		return "the request"
	case candidatesValue:
		return "a list of candidates"
	case candidateValue:
		return "a candidate"
	}
	return ""
}

// returned checks the value route returns at line: one that can never be
// a worker id (a number, a boolean, a table it builds, a function, the
// list of candidates, the request, what a helper returns that is none of
// these) fails every call, so it is refused now. Of a and b, or a or b,
// only b is checked: a is returned only when it is false or nil (for
// and) or when it is true (for or), which a script may know it is not.
func (c *nameCheck) returned(line int, e ast.Expr) {
	if l, ok := e.(*ast.LogicalOpExpr); ok {
		c.returned(line, l.Rhs)
		return
	}
	got := c.typeOf(e)
	switch got {
	case "", "a string", "nil", "a candidate":
		got = ""
	case "a list of candidates":
		got = "the list of candidates"
	}
	if call, ok := e.(*ast.FuncCallExpr); ok && got == "" {
		if n, what, ok := c.callee(call); ok && n.NeverWorkerID() {
			got = what + "'s result, " + n.Type
		}
	}
	if got != "" {
		c.problem(line, "return", "route returns %s, which is never a worker id: return a worker id (a string), a candidate or nil", got)
	}
}
