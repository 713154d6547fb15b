package luafast

import (
	"fmt"

	"github.com/yuin/gopher-lua/ast"
)

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
		c.loops = true
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
		c.loops = true
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
	if len(s.Lhs) > 1 {
		// gopher-lua evaluates each value straight into its target, so a
		// later value that reads an earlier target sees the new value
		// (a, b = b, a leaves both b); Lua evaluates them all first. The
		// interpreter is the reference: such a statement stays with it.
		targets := map[string]bool{}
		for _, t := range s.Lhs {
			targets[t.(*ast.IdentExpr).Value] = true
		}
		for _, e := range s.Rhs {
			if mentions(e, targets) {
				return nil, unsupported(s, "an assignment to several names whose values read them")
			}
		}
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
	c.loops = true
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
// with_tag or healthy list of them, the excluded ids or a candidate's tags.
func (c *compiler) genericFor(s *ast.GenericForStmt) (stmt, error) {
	c.loops = true
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
		case kTagged, kHealthy:
			n = len(f.in.Sel.Candidates)
		default:
			f.bail("ipairs over a " + l.k.String())
		}
		k := 0 // the position in the list
		for i := range n {
			if (l.k == kTagged || l.k == kHealthy) && !inDerived(f, l, i) {
				continue
			}
			k++
			if len(slots) > 0 {
				f.slots[slots[0]] = num(float64(k))
			}
			if len(slots) > 1 {
				var v value
				switch l.k {
				case kCands, kTagged, kHealthy:
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

// mentions reports whether e reads one of names, or may (an expression
// of a kind it does not know is taken to).
func mentions(e ast.Expr, names map[string]bool) bool {
	switch e := e.(type) {
	case *ast.NumberExpr, *ast.StringExpr, *ast.NilExpr, *ast.TrueExpr, *ast.FalseExpr, *ast.Comma3Expr:
		return false
	case *ast.IdentExpr:
		return names[e.Value]
	case *ast.AttrGetExpr:
		return mentions(e.Object, names) || mentions(e.Key, names)
	case *ast.ArithmeticOpExpr:
		return mentions(e.Lhs, names) || mentions(e.Rhs, names)
	case *ast.RelationalOpExpr:
		return mentions(e.Lhs, names) || mentions(e.Rhs, names)
	case *ast.LogicalOpExpr:
		return mentions(e.Lhs, names) || mentions(e.Rhs, names)
	case *ast.StringConcatOpExpr:
		return mentions(e.Lhs, names) || mentions(e.Rhs, names)
	case *ast.UnaryMinusOpExpr:
		return mentions(e.Expr, names)
	case *ast.UnaryNotOpExpr:
		return mentions(e.Expr, names)
	case *ast.UnaryLenOpExpr:
		return mentions(e.Expr, names)
	case *ast.FuncCallExpr:
		if (e.Func != nil && mentions(e.Func, names)) || (e.Receiver != nil && mentions(e.Receiver, names)) {
			return true
		}
		for _, a := range e.Args {
			if mentions(a, names) {
				return true
			}
		}
		return false
	}
	return true
}
