package luafast

import (
	"fmt"
	"math"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/pick"
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
	return &Route{body: body, nslots: c.nslots}, nil
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
		if v, ok := literal(e.Expr); ok && v.k == kNum {
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

// scoped compiles stmts as a block of their own.
func (c *compiler) scoped(stmts []ast.Stmt) (stmt, error) {
	c.block()
	defer c.unblock()
	return c.stmts(stmts)
}

// stmts compiles a sequence of statements in the current scope.
func (c *compiler) stmts(stmts []ast.Stmt) (stmt, error) {
	var out []stmt
	for _, s := range stmts {
		cs, err := c.stmt(s)
		if err != nil {
			return nil, err
		}
		out = append(out, cs)
	}
	switch len(out) {
	case 0:
		return func(*frame) flow { return flowNext }, nil
	case 1:
		return out[0], nil
	case 2:
		a, b := out[0], out[1]
		return func(f *frame) flow {
			if fl := a(f); fl != flowNext {
				return fl
			}
			return b(f)
		}, nil
	}
	return func(f *frame) flow {
		for _, s := range out {
			if fl := s(f); fl != flowNext {
				return fl
			}
		}
		return flowNext
	}, nil
}

func (c *compiler) exprs(es []ast.Expr) ([]expr, error) {
	out := make([]expr, len(es))
	for i, e := range es {
		ce, err := c.expr(e)
		if err != nil {
			return nil, err
		}
		out[i] = ce
	}
	return out, nil
}

func (c *compiler) stmt(s ast.Stmt) (stmt, error) {
	switch s := s.(type) {
	case *ast.LocalAssignStmt:
		return c.localAssign(s)
	case *ast.AssignStmt:
		return c.assign(s)
	case *ast.FuncCallStmt:
		call, ok := s.Expr.(*ast.FuncCallExpr)
		if !ok {
			return nil, unsupported(s, "a call statement that is not a call")
		}
		e, err := c.call(call)
		if err != nil {
			return nil, err
		}
		return func(f *frame) flow { e(f); return flowNext }, nil
	case *ast.DoBlockStmt:
		return c.scoped(s.Stmts)
	case *ast.IfStmt:
		return c.ifStmt(s)
	case *ast.WhileStmt:
		cond, err := c.branchCond(s.Condition, true)
		if err != nil {
			return nil, err
		}
		body, err := c.scoped(s.Stmts)
		if err != nil {
			return nil, err
		}
		return func(f *frame) flow {
			for cond(f) {
				switch body(f) {
				case flowBreak:
					return flowNext
				case flowReturn:
					return flowReturn
				}
				f.tick()
			}
			return flowNext
		}, nil
	case *ast.RepeatStmt:
		c.block()
		defer c.unblock()
		body, err := c.stmts(s.Stmts)
		if err != nil {
			return nil, err
		}
		cond, err := c.branchCond(s.Condition, false) // sees the body's locals
		if err != nil {
			return nil, err
		}
		return func(f *frame) flow {
			for {
				switch body(f) {
				case flowBreak:
					return flowNext
				case flowReturn:
					return flowReturn
				}
				if cond(f) {
					return flowNext
				}
				f.tick()
			}
		}, nil
	case *ast.NumberForStmt:
		return c.numberFor(s)
	case *ast.GenericForStmt:
		return c.genericFor(s)
	case *ast.ReturnStmt:
		es, err := c.exprs(s.Exprs)
		if err != nil {
			return nil, err
		}
		switch len(es) {
		case 0:
			return func(f *frame) flow { f.ret = nilValue; return flowReturn }, nil
		case 1:
			e := es[0]
			return func(f *frame) flow { f.ret = e(f); return flowReturn }, nil
		}
		return func(f *frame) flow {
			f.ret = es[0](f)
			for _, e := range es[1:] {
				e(f) // evaluated for its draws, as the interpreter does
			}
			return flowReturn
		}, nil
	case *ast.BreakStmt:
		return func(*frame) flow { return flowBreak }, nil
	}
	return nil, unsupported(s, fmt.Sprintf("a %T", s))
}

func (c *compiler) localAssign(s *ast.LocalAssignStmt) (stmt, error) {
	es, err := c.exprs(s.Exprs)
	if err != nil {
		return nil, err
	}
	// The values are computed before the names come into scope; each new
	// name has a slot of its own, which no value can read, so they can be
	// stored as they are computed.
	slots := make([]int, len(s.Names))
	for i, name := range s.Names {
		slots[i] = c.declare(name)
	}
	if len(slots) == 1 && len(es) == 1 {
		slot, e := slots[0], es[0]
		return func(f *frame) flow { f.slots[slot] = e(f); return flowNext }, nil
	}
	return func(f *frame) flow {
		for i, e := range es {
			v := e(f)
			if i < len(slots) {
				f.slots[slots[i]] = v
			}
		}
		for i := len(es); i < len(slots); i++ {
			f.slots[slots[i]] = nilValue
		}
		return flowNext
	}, nil
}

func (c *compiler) assign(s *ast.AssignStmt) (stmt, error) {
	if len(s.Lhs) > maxTargets {
		return nil, unsupported(s, "an assignment to more than 8 names")
	}
	slots := make([]int, len(s.Lhs))
	for i, target := range s.Lhs {
		id, ok := target.(*ast.IdentExpr)
		if !ok {
			return nil, unsupported(s, "an assignment to a field")
		}
		slot, ok := c.local(id.Value)
		if !ok {
			return nil, unsupported(s, "an assignment to "+id.Value+", not a local of route")
		}
		slots[i] = slot
	}
	es, err := c.exprs(s.Rhs)
	if err != nil {
		return nil, err
	}
	if len(slots) == 1 && len(es) == 1 {
		slot, e := slots[0], es[0]
		return func(f *frame) flow { f.slots[slot] = e(f); return flowNext }, nil
	}
	return func(f *frame) flow {
		var vals [maxTargets]value // every value first, then every name
		for i, e := range es {
			v := e(f)
			if i < len(slots) {
				vals[i] = v
			}
		}
		for i, slot := range slots {
			f.slots[slot] = vals[i]
		}
		return flowNext
	}, nil
}

func (c *compiler) ifStmt(s *ast.IfStmt) (stmt, error) {
	cond, err := c.branchCond(s.Condition, false)
	if err != nil {
		return nil, err
	}
	then, err := c.scoped(s.Then)
	if err != nil {
		return nil, err
	}
	if len(s.Else) == 0 {
		return func(f *frame) flow {
			if cond(f) {
				return then(f)
			}
			return flowNext
		}, nil
	}
	els, err := c.scoped(s.Else)
	if err != nil {
		return nil, err
	}
	return func(f *frame) flow {
		if cond(f) {
			return then(f)
		}
		return els(f)
	}, nil
}

// numberFor follows gopher-lua's FORPREP and FORLOOP: the start has the
// step taken off once, and the step added back before each test.
func (c *compiler) numberFor(s *ast.NumberForStmt) (stmt, error) {
	init, err := c.expr(s.Init)
	if err != nil {
		return nil, err
	}
	limit, err := c.expr(s.Limit)
	if err != nil {
		return nil, err
	}
	step := func(*frame) value { return num(1) }
	if s.Step != nil {
		if step, err = c.expr(s.Step); err != nil {
			return nil, err
		}
	}
	c.block()
	defer c.unblock()
	slot := c.declare(s.Name)
	body, err := c.stmts(s.Stmts)
	if err != nil {
		return nil, err
	}
	return func(f *frame) flow {
		iv, lv, sv := init(f), limit(f), step(f)
		if iv.k != kNum || lv.k != kNum || sv.k != kNum {
			f.bail("a for loop over a value that is not a number")
		}
		i, lim, st := iv.n-sv.n, lv.n, sv.n
		for {
			i += st
			if !(st > 0 && i <= lim || st <= 0 && i >= lim) {
				return flowNext
			}
			f.slots[slot] = num(i)
			switch body(f) {
			case flowBreak:
				return flowNext
			case flowReturn:
				return flowReturn
			}
			f.tick()
		}
	}, nil
}

// genericFor compiles `for i, v in ipairs(list)` over the candidates, a
// with_tag list of them, the excluded ids or a candidate's tags.
func (c *compiler) genericFor(s *ast.GenericForStmt) (stmt, error) {
	if len(s.Exprs) != 1 {
		return nil, unsupported(s, "a generic for other than ipairs(list)")
	}
	call, ok := s.Exprs[0].(*ast.FuncCallExpr)
	if !ok || call.Receiver != nil || !c.global(call.Func, "ipairs") || len(call.Args) != 1 {
		return nil, unsupported(s, "a generic for other than ipairs(list)")
	}
	list, err := c.expr(call.Args[0])
	if err != nil {
		return nil, err
	}
	c.block()
	defer c.unblock()
	slots := make([]int, len(s.Names))
	for i, name := range s.Names {
		slots[i] = c.declare(name)
	}
	body, err := c.stmts(s.Stmts)
	if err != nil {
		return nil, err
	}
	return func(f *frame) flow {
		l := list(f)
		n := 0
		switch l.k {
		case kCands:
			n = len(f.in.Sel.Candidates)
		case kExcl:
			n = len(f.in.Sel.Excluded)
		case kTags:
			n = len(f.in.Sel.Candidates[l.i].State.Tags)
		case kTagged:
			n = len(f.in.Sel.Candidates)
		default:
			f.bail("ipairs over a " + l.k.String())
		}
		k := 0 // the position in the list
		for i := range n {
			if l.k == kTagged && !f.in.Sel.Candidates[i].State.HasAffinity(l.s) {
				continue
			}
			k++
			if len(slots) > 0 {
				f.slots[slots[0]] = num(float64(k))
			}
			if len(slots) > 1 {
				var v value
				switch l.k {
				case kCands, kTagged:
					v = value{k: kCand, i: int32(i)}
				case kExcl:
					v = str(f.in.Sel.Excluded[i])
				case kTags:
					v = str(f.in.Sel.Candidates[l.i].State.Tags[i])
				}
				f.slots[slots[1]] = v
				for _, slot := range slots[2:] {
					f.slots[slot] = nilValue
				}
			}
			switch body(f) {
			case flowBreak:
				return flowNext
			case flowReturn:
				return flowReturn
			}
			f.tick()
		}
		return flowNext
	}, nil
}

func (c *compiler) expr(e ast.Expr) (expr, error) {
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

// call compiles the calls of the subset: c:has_tag(tag), math.max, min,
// floor and abs, and the dispatch helpers that take the candidates.
func (c *compiler) call(e *ast.FuncCallExpr) (expr, error) {
	if attr, ok := e.Func.(*ast.AttrGetExpr); ok && e.Receiver == nil && c.global(attr.Object, "math") {
		if key, ok := attr.Key.(*ast.StringExpr); ok {
			x, err := c.mathCall(e, key.Value)
			if err != nil {
				return nil, err
			}
			return func(f *frame) value { return num(x(f)) }, nil
		}
	}
	args, err := c.exprs(e.Args)
	if err != nil {
		return nil, err
	}
	if e.Receiver == nil && c.global(e.Func, "type") && len(args) > 0 {
		return func(f *frame) value {
			v := args[0](f)
			evalRest(f, args, 1)
			return str(v.k.String())
		}, nil
	}
	if e.Receiver != nil {
		if e.Method != "has_tag" || len(args) < 1 {
			return nil, unsupported(e, "a method call other than c:has_tag(tag)")
		}
		recv, err := c.expr(e.Receiver)
		if err != nil {
			return nil, err
		}
		return c.hasTag(recv, args), nil
	}
	attr, ok := e.Func.(*ast.AttrGetExpr)
	if !ok {
		return nil, unsupported(e, "a call of a function outside the subset")
	}
	key, ok := attr.Key.(*ast.StringExpr)
	if !ok {
		return nil, unsupported(e, "a call of a function outside the subset")
	}
	if c.global(attr.Object, "dispatch") {
		return c.helperCall(e, key.Value, args)
	}
	return nil, unsupported(e, "a call of a function outside the subset")
}

// evalRest evaluates args[from:] for their effects (random draws), as the
// interpreter evaluates every argument.
func evalRest(f *frame, args []expr, from int) {
	for _, a := range args[from:] {
		a(f)
	}
}

func (c *compiler) hasTag(recv expr, args []expr) expr {
	tag := args[0]
	return func(f *frame) value {
		r := recv(f)
		if r.k != kCand {
			f.bail("has_tag on a " + r.k.String())
		}
		t := tag(f)
		evalRest(f, args, 1)
		if t.k != kStr {
			f.bail("has_tag of a " + t.k.String())
		}
		return boolean(f.in.Sel.Candidates[r.i].State.HasAffinity(t.s))
	}
}

// listArg reads a helper's list argument: the candidates, or what
// with_tag made of them.
func listArg(f *frame, a expr, helper string) value {
	v := a(f)
	if v.k != kCands && v.k != kTagged {
		f.bail("dispatch." + helper + " of a " + v.k.String())
	}
	return v
}

// listViews returns the views of list, as the interpreter's helpers see it.
func listViews(f *frame, list value) []engine.ConsumerStateView {
	if list.k == kTagged {
		return f.taggedViews(list.s)
	}
	return f.views()
}

// viewChoice is the id at index i of views, or nil.
func viewChoice(views []engine.ConsumerStateView, i int) value {
	if i < 0 {
		return nilValue
	}
	return str(views[i].ID)
}

// choice is the id a helper chose, or nil.
func choice(f *frame, i int) value {
	if i < 0 {
		return nilValue
	}
	return str(f.in.Sel.Candidates[i].ID())
}

func (c *compiler) helperCall(e *ast.FuncCallExpr, name string, args []expr) (expr, error) {
	switch name {
	case "least_loaded":
		switch len(args) {
		case 1:
			return func(f *frame) value {
				l := listArg(f, args[0], name)
				// LeastLoaded(WithTag(cands, tag)) is LeastLoadedWithTag(cands, tag).
				return choice(f, pick.LeastLoadedWorkers(f.in.Sel.Candidates, l.s, l.k == kTagged))
			}, nil
		case 2:
			return func(f *frame) value {
				l := listArg(f, args[0], name)
				tag := args[1](f)
				if tag.k != kStr {
					f.bail("dispatch.least_loaded with a tag that is a " + tag.k.String())
				}
				if l.k == kCands {
					return choice(f, pick.LeastLoadedWorkers(f.in.Sel.Candidates, tag.s, true))
				}
				views := listViews(f, l)
				return viewChoice(views, pick.LeastLoadedWithTag(views, tag.s))
			}, nil
		}
	case "with_tag":
		if len(args) == 2 {
			return func(f *frame) value {
				if l := args[0](f); l.k != kCands {
					f.bail("dispatch.with_tag of a " + l.k.String())
				}
				tag := args[1](f)
				if tag.k != kStr {
					f.bail("dispatch.with_tag with a tag that is a " + tag.k.String())
				}
				f.lists++ // each result is a value of its own, equal only to itself
				return value{k: kTagged, s: tag.s, i: f.lists}
			}, nil
		}
	case "rendezvous":
		if len(args) == 2 {
			return func(f *frame) value {
				l := listArg(f, args[0], name)
				key := args[1](f)
				if key.k != kStr {
					f.bail("dispatch.rendezvous with a key that is a " + key.k.String())
				}
				views := listViews(f, l)
				return viewChoice(views, pick.Rendezvous(views, key.s))
			}, nil
		}
	case "p2c":
		if len(args) == 1 {
			return func(f *frame) value {
				views := listViews(f, listArg(f, args[0], name))
				return viewChoice(views, pick.P2C(views, f.rand()))
			}, nil
		}
	case "random":
		return func(f *frame) value {
			evalRest(f, args, 0)
			return num(f.rand().Float64())
		}, nil
	case "has_tag":
		if len(args) == 2 {
			return c.hasTag(args[0], args[1:]), nil
		}
	}
	return nil, unsupported(e, fmt.Sprintf("dispatch.%s with %d arguments", name, len(args)))
}

// mathCall compiles math.max, min, floor and abs, whose arguments must be
// numbers (the interpreter's CheckNumber would also take a numeric string:
// that falls back).
func (c *compiler) mathCall(e *ast.FuncCallExpr, name string) (numExpr, error) {
	if name == "random" {
		return c.mathRandom(e)
	}
	if len(e.Args) == 0 {
		return nil, unsupported(e, "math."+name+" without arguments")
	}
	switch name {
	case "max", "min":
		args := make([]numExpr, len(e.Args))
		for i, a := range e.Args {
			x, err := c.num(a)
			if err != nil {
				return nil, err
			}
			args[i] = x
		}
		isMax := name == "max"
		if len(args) == 2 {
			a0, a1 := args[0], args[1]
			if isMax {
				return func(f *frame) float64 {
					m, v := a0(f), a1(f)
					if v > m {
						m = v
					}
					return m
				}, nil
			}
			return func(f *frame) float64 {
				m, v := a0(f), a1(f)
				if v < m {
					m = v
				}
				return m
			}, nil
		}
		return func(f *frame) float64 {
			m := args[0](f)
			for _, a := range args[1:] {
				if v := a(f); isMax && v > m || !isMax && v < m {
					m = v
				}
			}
			return m
		}, nil
	case "floor", "abs":
		x, err := c.num(e.Args[0])
		if err != nil {
			return nil, err
		}
		rest, err := c.exprs(e.Args[1:]) // evaluated, not read
		if err != nil {
			return nil, err
		}
		fn := math.Floor
		if name == "abs" {
			fn = math.Abs
		}
		return func(f *frame) float64 {
			v := x(f)
			evalRest(f, rest, 0)
			return fn(v)
		}, nil
	}
	return nil, unsupported(e, "math."+name)
}

// pow is Lua's ^.
func pow(a, b float64) float64 { return math.Pow(a, b) }

// mathRandom compiles math.random as the sandbox defines it: drawing from
// the call's seeded source; math.random() in [0, 1), math.random(m) in
// [1, m], math.random(m, n) in [m, n], bounds truncated to integers.
func (c *compiler) mathRandom(e *ast.FuncCallExpr) (numExpr, error) {
	args, err := c.exprs(e.Args)
	if err != nil {
		return nil, err
	}
	// bound is an argument as the interpreter's CheckInt reads it; bounds
	// too large to convert exactly fall back.
	bound := func(f *frame, v value) int {
		if v.k != kNum || !(math.Abs(v.n) < 1<<31) {
			f.bail("math.random with a bound that is a " + v.k.String())
		}
		return int(v.n)
	}
	switch len(args) {
	case 0:
		return func(f *frame) float64 { return f.rand().Float64() }, nil
	case 1:
		return func(f *frame) float64 {
			m := bound(f, args[0](f))
			if m < 1 {
				f.bail("math.random: interval is empty")
			}
			return float64(1 + f.rand().IntN(m))
		}, nil
	}
	return func(f *frame) float64 {
		a := args[0](f)
		b := args[1](f)
		evalRest(f, args, 2)
		m, n := bound(f, a), bound(f, b)
		if m > n {
			f.bail("math.random: interval is empty")
		}
		return float64(m + f.rand().IntN(n-m+1))
	}, nil
}
