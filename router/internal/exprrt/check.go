package exprrt

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"

	"github.com/aion-dispatch/dispatch/router/internal/call"
	"github.com/aion-dispatch/dispatch/router/internal/names"
)

// check parses and type-checks a script under opts and returns every
// problem it finds, as one [*call.Error] with the further ones in More,
// in the order of the script; nil when there are none. Beyond expr's
// checker, which stops at its first error, it walks the parsed script for
// every unknown name, every helper named and not called, every helper
// call with a count or a type of argument the table of names does not
// allow, and a result that can never be a worker id.
func check(src []byte, opts []expr.Option) error {
	config := conf.CreateNew()
	for _, op := range opts {
		op(config)
	}
	for name := range config.Disabled {
		delete(config.Builtins, name)
	}
	config.Check()
	tree, err := parser.ParseWithConfig(string(src), config)
	if err != nil {
		return exprError(src, err) // a syntax error: nothing more to walk
	}
	c := &checks{config: config}
	c.names(tree.Node)
	c.fields(tree.Node)
	_, checkErr := checker.Check(tree, config)
	// The checker typed the nodes it reached: the checks of types use them
	// (a node it did not reach is of any type, which passes).
	c.helpers(tree.Node)
	if checkErr == nil {
		c.result(tree.Node)
	}
	if fe, ok := checkErr.(*file.Error); ok && !slices.ContainsFunc(c.problems, func(p *file.Error) bool { return p.From == fe.From }) {
		c.problems = append(c.problems, fe)
	} else if checkErr != nil && !ok && len(c.problems) == 0 {
		return exprError(src, checkErr)
	}
	if len(c.problems) == 0 {
		return nil
	}
	slices.SortStableFunc(c.problems, func(a, b *file.Error) int { return cmp.Compare(a.From, b.From) })
	c.problems = slices.CompactFunc(c.problems, func(a, b *file.Error) bool { return a.From == b.From })
	source := file.NewSource(string(src))
	var errs []*call.Error
	for _, p := range c.problems {
		errs = append(errs, exprError(src, p.Bind(source)))
	}
	errs[0].More = errs[1:]
	if len(errs[0].More) == 0 {
		errs[0].More = nil
	}
	return errs[0]
}

// checks collects the problems of one script.
type checks struct {
	config   *conf.Config
	problems []*file.Error
}

func (c *checks) problem(n ast.Node, format string, args ...any) {
	c.problems = append(c.problems, &file.Error{Location: n.Location(), Message: fmt.Sprintf(format, args...)})
}

// names finds every name the script reads that is neither the
// environment's, nor a function's or builtin's, nor declared by let
// anywhere in it (which can only hide a problem, never invent one).
func (c *checks) names(node ast.Node) {
	declared := map[string]bool{}
	ast.Walk(&node, visitFunc(func(n ast.Node) {
		if v, ok := n.(*ast.VariableDeclaratorNode); ok {
			declared[v.Name] = true
		}
	}))
	env := exprEnvTypes()
	ast.Walk(&node, visitFunc(func(n ast.Node) {
		id, ok := n.(*ast.IdentifierNode)
		if !ok || declared[id.Value] || id.Value == "$env" {
			return
		}
		_, inEnv := env[id.Value]
		_, fn := c.config.Functions[id.Value]
		_, bi := c.config.Builtins[id.Value]
		if !inEnv && !fn && !bi {
			c.problem(id, "unknown name %s", id.Value)
		}
	}))
}

// fields finds every field read of the request, and of a candidate in a
// predicate over a list of candidates (`filter(candidates, #.availble > 0)`,
// `.availble` for short), that the script cannot have: expr's checker
// stops at its first. It names them as the checker does, so they read the
// same. What it cannot see the type of (a list from fromJSON, a let) is
// left to the checker.
func (c *checks) fields(node ast.Node) {
	declared := map[string]bool{}
	ast.Walk(&node, visitFunc(func(n ast.Node) {
		if v, ok := n.(*ast.VariableDeclaratorNode); ok {
			declared[v.Name] = true
		}
	}))
	if declared["request"] || declared["candidates"] {
		return // the script has its own: the checker knows better
	}
	request := names.Expr(names.RequestField)
	candidate := names.Expr(names.CandidateField)
	ast.Walk(&node, visitFunc(func(n ast.Node) {
		switch n := n.(type) {
		case *ast.MemberNode:
			id, isID := n.Node.(*ast.IdentifierNode)
			prop, isStr := n.Property.(*ast.StringNode)
			if isID && isStr && id.Value == "request" && !slices.Contains(request, prop.Value) {
				c.problem(prop, "type exprrt.exprRequest has no field %s", prop.Value)
			}
		case *ast.BuiltinNode:
			if len(n.Arguments) < 2 || !c.candidateList(n.Arguments[0]) {
				return
			}
			pred, ok := n.Arguments[1].(*ast.PredicateNode)
			if !ok {
				return
			}
			c.pointerFields(pred.Node, candidate)
		}
	}))
}

// pointerFields reports the reads of # in body (the element of the
// predicate's own list, not of a nested predicate's) naming no candidate
// field.
func (c *checks) pointerFields(body ast.Node, fields []string) {
	inner := map[ast.Node]bool{} // what nested predicates hold
	ast.Walk(&body, visitFunc(func(n ast.Node) {
		if p, ok := n.(*ast.PredicateNode); ok {
			ast.Walk(&p.Node, visitFunc(func(m ast.Node) { inner[m] = true }))
		}
	}))
	ast.Walk(&body, visitFunc(func(n ast.Node) {
		m, ok := n.(*ast.MemberNode)
		if !ok || inner[m] {
			return
		}
		p, isPtr := m.Node.(*ast.PointerNode)
		prop, isStr := m.Property.(*ast.StringNode)
		if isPtr && p.Name == "" && isStr && !slices.Contains(fields, prop.Value) {
			c.problem(prop, "type exprrt.exprCandidate has no field %s", prop.Value)
		}
	}))
}

// candidateList reports whether n is, whatever runs, a list of
// candidates: the candidates, a helper that returns some, or a builtin
// that keeps some of a list of candidates (filter, sortBy, take...).
func (c *checks) candidateList(n ast.Node) bool {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return n.Value == "candidates"
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || !helperNames[id.Value] {
			return false
		}
		h, ok := names.LookupExpr(names.Helper, id.Value)
		return ok && h.Type == "list of candidates"
	case *ast.BuiltinNode:
		switch n.Name {
		case "filter", "sortBy", "take", "reverse", "uniq", "sort":
			return len(n.Arguments) > 0 && c.candidateList(n.Arguments[0])
		}
	}
	return false
}

// helpers refuses a helper named other than to call it: a function value
// has nothing a script can use, and fmt would write it, in a string or a
// message, as its address. It also refuses a call of a helper with a
// number of arguments, or an argument of a type, the table of names says
// it does not take.
func (c *checks) helpers(node ast.Node) {
	var callees, named []*ast.IdentifierNode
	ast.Walk(&node, visitFunc(func(n ast.Node) {
		switch n := n.(type) {
		case *ast.CallNode:
			id, ok := n.Callee.(*ast.IdentifierNode)
			if !ok {
				return
			}
			callees = append(callees, id)
			h, ok := names.LookupExpr(names.Helper, id.Value)
			if !ok || !helperNames[id.Value] {
				return
			}
			if !h.Accepts(len(n.Arguments)) {
				c.problem(id, "%s %s, got %d", id.Value, h.Takes(), len(n.Arguments))
				return
			}
			for i, arg := range n.Arguments {
				if got, ok := argFits(h.Arg(i), arg.Type()); !ok {
					c.problem(arg, "%s: argument %d must be %s, got %s", id.Value, i+1, h.Arg(i), got)
				}
			}
		case *ast.IdentifierNode:
			if helperNames[n.Value] {
				named = append(named, n)
			}
		}
	}))
	for _, id := range named {
		if !slices.Contains(callees, id) {
			c.problem(id, "%s is a helper and not a value: call it, as in %s(candidates)", id.Value, id.Value)
		}
	}
}

// argFits reports whether a value of type t may be passed where want
// is expected, and if not, what t is in the script's words. Any type
// passes: the checker cannot tell.
func argFits(want names.Arg, t reflect.Type) (string, bool) {
	if t == nil || t.Kind() == reflect.Interface {
		return "", true
	}
	switch want {
	case names.List:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			e := t.Elem()
			if e.Kind() == reflect.Interface || e == candidateType {
				return "", true
			}
		}
	case names.String:
		if t.Kind() == reflect.String {
			return "", true
		}
	case names.Candidate:
		if t == candidateType || t == candidateType.Elem() {
			return "", true
		}
	case names.Number:
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Float32, reflect.Float64:
			return "", true
		}
	default:
		return "", true
	}
	return typeWords(t), false
}

var (
	candidateType = reflect.TypeOf(&exprCandidate{})
	requestType   = reflect.TypeOf(&exprRequest{})
)

// typeWords names a type in the script's words: "an integer".
func typeWords(t reflect.Type) string {
	switch {
	case t == candidateType || t == candidateType.Elem():
		return "a candidate"
	case t == requestType || t == requestType.Elem():
		return "the request"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		switch e := t.Elem(); {
		case e == candidateType:
			return "a list of candidates"
		case e.Kind() == reflect.String:
			return "a list of strings"
		}
		return "a list"
	case reflect.Map:
		return "a map"
	case reflect.Func:
		return "a function"
	}
	return exprTypeNames.Replace(t.String())
}

// result refuses a script whose result, on some path, can never be a
// worker id: a number, a boolean, a list, a map, the request, or a helper
// the table of names says returns one of these. A string, a candidate,
// nil and a value of any type (fromJSON's, say) pass.
func (c *checks) result(n ast.Node) {
	switch n := n.(type) {
	case *ast.ConditionalNode:
		c.result(n.Exp1)
		c.result(n.Exp2)
		return
	case *ast.BinaryNode:
		if n.Operator == "??" {
			c.result(n.Left)
			c.result(n.Right)
			return
		}
	case *ast.VariableDeclaratorNode:
		c.result(n.Expr)
		return
	case *ast.SequenceNode:
		if len(n.Nodes) > 0 {
			c.result(n.Nodes[len(n.Nodes)-1])
		}
		return
	case *ast.CallNode:
		if id, ok := n.Callee.(*ast.IdentifierNode); ok && helperNames[id.Value] {
			if h, ok := names.LookupExpr(names.Helper, id.Value); ok && h.NeverWorkerID() {
				c.problem(n, "the script returns %s's result, %s, which is never a worker id: return a worker id (a string), a candidate or nil", id.Value, h.Type)
			}
			return
		}
	case *ast.NilNode:
		return
	}
	t := n.Type()
	if t == nil || t.Kind() == reflect.Interface || t.Kind() == reflect.String || t == candidateType || t == candidateType.Elem() {
		return
	}
	c.problem(n, "the script returns %s, which is never a worker id: return a worker id (a string), a candidate or nil", typeWords(t))
}
