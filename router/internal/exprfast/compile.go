package exprfast

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/expr-lang/expr/ast"

	"github.com/aion-dispatch/dispatch/router/internal/pick"
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
// counts against as the VM would and falls back past.
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
	return &Program{body: body, nslots: max(c.nslots, 1), depth: c.depth, budget: budget}, nil
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

// field is a candidate's or the request's field.
type field uint8

const (
	fieldNone field = iota
	fieldID
	fieldInFlight
	fieldMaxInFlight
	fieldBufferDepth
	fieldAvailable
	fieldTags
)

// candFields are a candidate's fields by their expr names.
var candFields = map[string]field{
	"id": fieldID, "in_flight": fieldInFlight, "max_in_flight": fieldMaxInFlight,
	"buffer_depth": fieldBufferDepth, "available": fieldAvailable, "tags": fieldTags,
}

// requestFields read the request's fields by their expr names.
var requestFields = map[string]func(f *frame) value{
	"namespace":          func(f *frame) value { return strValue(f.in.Sel.Channel.Namespace()) },
	"task_queue":         func(f *frame) value { return strValue(f.in.Sel.Channel.TaskQueue()) },
	"channel":            func(f *frame) value { return strValue(f.in.Sel.Channel.String()) },
	"workflow_id":        func(f *frame) value { return strValue(f.in.Sel.WorkflowID) },
	"conversation_id":    func(f *frame) value { return strValue(f.in.Sel.ConversationID) },
	"attempt":            func(f *frame) value { return intValue(f.in.Sel.Attempt) },
	"activity_type":      func(f *frame) value { return strValue(f.in.Sel.Request.ActivityType) },
	"input_content_type": func(f *frame) value { return strValue(f.in.Sel.Request.Input.ContentType) },
	"input":              func(f *frame) value { return strValue(string(f.in.Sel.Request.Input.Data)) },
}

func (c *compiler) member(n *ast.MemberNode) eval {
	if n.Method {
		c.unsupported(n, "a method")
	}
	// a?.b is nil when a is: the rest of the chain (a?.b.c) reads a member
	// of nil, which falls back for the VM to end the chain.
	optional := n.Optional
	obj := c.compile(n.Node)
	if prop, ok := n.Property.(*ast.StringNode); ok {
		cf := candFields[prop.Value]
		rf := requestFields[prop.Value]
		if cf == fieldNone && rf == nil {
			c.unsupported(n, "the field %s", prop.Value)
		}
		return func(f *frame) value {
			o := obj(f)
			switch {
			case optional && o.k == kNil:
				return nilValue
			case o.k == kCand && cf != fieldNone:
				return candField(f, o.i, cf)
			case o.k == kReq && rf != nil:
				return rf(f)
			}
			f.bail("a field of " + o.k.String())
			return nilValue
		}
	}
	index := c.compile(n.Property)
	return func(f *frame) value {
		o := obj(f)
		if optional && o.k == kNil {
			return nilValue
		}
		ix := index(f)
		if ix.k != kInt {
			f.bail("an index that is not an int")
		}
		i := ix.i
		var size int
		switch o.k {
		case kList:
			size = o.n
		case kTags:
			size = len(f.in.Sel.Candidates[o.i].State.Tags)
		case kExcl:
			size = len(f.in.Sel.Excluded)
		default:
			f.bail("an index into " + o.k.String())
		}
		if i < 0 {
			i += size
		}
		if i < 0 || i >= size {
			f.bail("an index out of range")
		}
		return element(f, o, i)
	}
}

// element returns element j of a list: a candidate, a tag or an excluded id.
func element(f *frame, l value, j int) value {
	switch l.k {
	case kList:
		return candValue(f.elem(l, j))
	case kTags:
		return strValue(f.in.Sel.Candidates[l.i].State.Tags[j])
	case kExcl:
		return strValue(f.in.Sel.Excluded[j])
	}
	f.bail("an element of " + l.k.String())
	return nilValue
}

// length returns the length of a list, or ok false for what is no list.
func length(f *frame, l value) (int, bool) {
	switch l.k {
	case kList:
		return l.n, true
	case kTags:
		return len(f.in.Sel.Candidates[l.i].State.Tags), true
	case kExcl:
		return len(f.in.Sel.Excluded), true
	}
	return 0, false
}

func candField(f *frame, i int, cf field) value {
	w := &f.in.Sel.Candidates[i]
	switch cf {
	case fieldID:
		return strValue(w.ID())
	case fieldInFlight:
		return intValue(w.State.InFlight)
	case fieldMaxInFlight:
		return intValue(w.State.MaxInFlight)
	case fieldBufferDepth:
		return intValue(w.State.BufferDepth)
	case fieldAvailable:
		return intValue(w.State.Available())
	case fieldTags:
		return value{k: kTags, i: i}
	}
	f.bail("a field")
	return nilValue
}

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

// call compiles a call of a helper, which calls the package pick function
// exprrt's helper calls.
func (c *compiler) call(n *ast.CallNode) eval {
	id, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		c.unsupported(n, "a call of an expression")
	}
	if _, shadowed := c.lookup(id.Value); shadowed {
		c.unsupported(n, "a call of a variable")
	}
	args := make([]eval, len(n.Arguments))
	for i, a := range n.Arguments {
		args[i] = c.compile(a)
	}
	arity := func(lo, hi int) {
		if len(args) < lo || len(args) > hi {
			c.unsupported(n, "%s with %d arguments", id.Value, len(args))
		}
	}
	list := func(f *frame) value {
		l := args[0](f)
		if l.k != kList {
			f.bail("a helper given " + l.k.String())
		}
		return l
	}
	str := func(f *frame, i int) string {
		v := args[i](f)
		if v.k != kStr {
			f.bail("a helper given " + v.k.String() + " for a string")
		}
		return v.s
	}
	switch id.Value {
	case "leastLoaded":
		arity(1, 2)
		byTag := len(args) == 2
		return func(f *frame) value {
			l := list(f)
			var tag string
			if byTag {
				tag = str(f, 1)
			}
			if l.i < 0 { // the candidates: read the workers in place
				ws := f.in.Sel.Candidates
				return choiceWorkers(f, pick.LeastLoadedWorkers(ws, tag, byTag))
			}
			views := f.listViews(l)
			if byTag {
				return choiceViews(views, pick.LeastLoadedWithTag(views, tag))
			}
			return choiceViews(views, pick.LeastLoaded(views))
		}
	case "withTag":
		arity(2, 2)
		return func(f *frame) value {
			l := list(f)
			tag := str(f, 1)
			off := len(f.arena)
			for j := range l.n {
				if i := f.elem(l, j); f.in.Sel.Candidates[i].State.HasAffinity(tag) {
					f.arena = append(f.arena, int32(i))
				}
			}
			return value{k: kList, i: off, n: len(f.arena) - off}
		}
	case "rendezvous":
		arity(2, 2)
		return func(f *frame) value {
			l := list(f)
			key := str(f, 1)
			views := f.listViews(l)
			return choiceViews(views, pick.Rendezvous(views, key))
		}
	case "p2c":
		arity(1, 1)
		return func(f *frame) value {
			views := f.listViews(list(f))
			return choiceViews(views, pick.P2C(views, f.rand()))
		}
	case "random":
		arity(0, 0)
		return func(f *frame) value { return floatValue(f.rand().Float64()) }
	case "hasTag":
		arity(2, 2)
		return func(f *frame) value {
			cv := args[0](f)
			if cv.k != kCand {
				f.bail("hasTag given " + cv.k.String())
			}
			return boolValue(f.in.Sel.Candidates[cv.i].State.HasAffinity(str(f, 1)))
		}
	}
	c.unsupported(n, "a call of %s", id.Value)
	return nil
}

func choiceWorkers(f *frame, i int) value {
	if i < 0 {
		return nilValue
	}
	return strValue(f.in.Sel.Candidates[i].ID())
}

func choiceViews(views []engineView, i int) value {
	if i < 0 {
		return nilValue
	}
	return strValue(views[i].ID)
}
