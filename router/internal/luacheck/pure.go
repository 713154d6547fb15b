package luacheck

import "github.com/yuin/gopher-lua/ast"

// Whether one run of a chunk can serve every call.
//
// Calls must not see each other: the same inputs give the same decision
// whichever pooled state runs them. A chunk whose top level only defines
// functions and scalar constants, and whose functions never assign to a
// variable declared outside their own body (a global or an upvalue), has no
// state a call could change: the libraries are read-only, the host's values
// are read-only, and every table a call builds is its own. Such a chunk is
// run once per state. Any other chunk is run afresh before every call, so
// that its globals, top-level locals and top-level tables are new each time.

//
// A pure chunk is also direct when every table it writes to with assignment
// syntax (t.k = v, t[k] = v) is provably a table its own function built with
// a constructor. Such a chunk can be given the host's data tables without
// read-only proxies in front: the only other ways to write a table, rawset
// and the table library, are gone or refuse host tables.

// Purity reports whether stmts qualify for running once, and for direct
// access to the host's tables.
func Purity(stmts []ast.Stmt) (pure, direct bool) {
	p := &purity{direct: true}
	p.enter()
	for _, s := range stmts {
		if !p.topLevel(s) {
			return false, false
		}
	}
	return true, p.direct
}

// purity walks function bodies, tracking which names are local to the
// function being walked, and which of those hold a table the function built.
type purity struct {
	funcs  [][]map[string]bool // per function, its block scopes
	fresh  [][]map[string]bool // per function, per block: locals bound to a table built here
	direct bool                // no write to a table that may not be fresh has been seen
}

func (p *purity) enter() {
	p.funcs = append(p.funcs, []map[string]bool{{}})
	p.fresh = append(p.fresh, []map[string]bool{{}})
}

func (p *purity) leave() {
	p.funcs = p.funcs[:len(p.funcs)-1]
	p.fresh = p.fresh[:len(p.fresh)-1]
}

func (p *purity) block() {
	n := len(p.funcs) - 1
	p.funcs[n] = append(p.funcs[n], map[string]bool{})
	p.fresh[n] = append(p.fresh[n], map[string]bool{})
}

// unblock leaves a block: what became fresh inside it is forgotten, since
// the block may not have run; what stopped being fresh stays stopped.
func (p *purity) unblock() {
	n := len(p.funcs) - 1
	p.funcs[n] = p.funcs[n][:len(p.funcs[n])-1]
	p.fresh[n] = p.fresh[n][:len(p.fresh[n])-1]
}

func (p *purity) cur() []map[string]bool { return p.funcs[len(p.funcs)-1] }

// isFresh reports whether name holds a table its function built.
func (p *purity) isFresh(name string) bool {
	for _, scope := range p.fresh[len(p.fresh)-1] {
		if scope[name] {
			return true
		}
	}
	return false
}

// bind records what name now holds: a fresh table, or something else.
func (p *purity) bind(name string, e ast.Expr) {
	f := p.fresh[len(p.fresh)-1]
	if _, ok := e.(*ast.TableExpr); ok {
		f[len(f)-1][name] = true
		return
	}
	for _, scope := range f {
		delete(scope, name)
	}
}

// unbindAssigned forgets the freshness of every name a loop body assigns, so
// that a write early in the body is judged with what a later iteration sees.
func (p *purity) unbindAssigned(stmts []ast.Stmt) {
	for _, s := range stmts {
		switch s := s.(type) {
		case *ast.AssignStmt:
			for _, l := range s.Lhs {
				if id, ok := l.(*ast.IdentExpr); ok {
					p.bind(id.Value, nil)
				}
			}
		case *ast.DoBlockStmt:
			p.unbindAssigned(s.Stmts)
		case *ast.WhileStmt:
			p.unbindAssigned(s.Stmts)
		case *ast.RepeatStmt:
			p.unbindAssigned(s.Stmts)
		case *ast.IfStmt:
			p.unbindAssigned(s.Then)
			p.unbindAssigned(s.Else)
		case *ast.NumberForStmt:
			p.unbindAssigned(s.Stmts)
		case *ast.GenericForStmt:
			p.unbindAssigned(s.Stmts)
		}
	}
}

// checkTarget notes whether an assignment target writes a table that may
// not be fresh.
func (p *purity) checkTarget(l ast.Expr) {
	a, ok := l.(*ast.AttrGetExpr)
	if !ok {
		return
	}
	if id, ok := a.Object.(*ast.IdentExpr); !ok || !p.local(id.Value) || !p.isFresh(id.Value) {
		p.direct = false
	}
}
func (p *purity) declare(names ...string) {
	f := p.cur()
	for _, n := range names {
		f[len(f)-1][n] = true
	}
}

// local reports whether name is a local of the function being walked.
func (p *purity) local(name string) bool {
	for _, scope := range p.cur() {
		if scope[name] {
			return true
		}
	}
	return false
}

// exprAt returns es[i], or nil past its end.
func exprAt(es []ast.Expr, i int) ast.Expr {
	if i < len(es) {
		return es[i]
	}
	return nil
}

func isConstant(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.NumberExpr, *ast.StringExpr, *ast.TrueExpr, *ast.FalseExpr, *ast.NilExpr:
		return true
	case *ast.UnaryMinusOpExpr:
		_, ok := e.Expr.(*ast.NumberExpr)
		return ok
	}
	return false
}

// topLevel accepts function definitions and scalar constants.
func (p *purity) topLevel(s ast.Stmt) bool {
	switch s := s.(type) {
	case *ast.LabelStmt, *ast.GotoStmt:
		p.direct = false
		return true
	case *ast.FuncDefStmt:
		if _, ok := s.Name.Func.(*ast.IdentExpr); !ok || s.Name.Method != "" {
			return false
		}
		return p.function(s.Func)
	case *ast.LocalAssignStmt:
		for _, e := range s.Exprs {
			if f, ok := e.(*ast.FunctionExpr); ok {
				p.declare(s.Names...) // local function f: f is visible in its body
				if !p.function(f) {
					return false
				}
			} else if !isConstant(e) {
				return false
			}
		}
		p.declare(s.Names...)
		return true
	case *ast.AssignStmt:
		for _, l := range s.Lhs {
			if _, ok := l.(*ast.IdentExpr); !ok {
				return false
			}
		}
		for _, e := range s.Rhs {
			if f, ok := e.(*ast.FunctionExpr); ok {
				if !p.function(f) {
					return false
				}
			} else if !isConstant(e) {
				return false
			}
		}
		return true
	}
	return false
}

// function reports whether a function body assigns only to its own locals.
func (p *purity) function(f *ast.FunctionExpr) bool {
	p.enter()
	defer p.leave()
	if f.ParList != nil {
		p.declare(f.ParList.Names...)
	}
	return p.stmts(f.Stmts)
}

func (p *purity) stmts(stmts []ast.Stmt) bool {
	for _, s := range stmts {
		if !p.stmt(s) {
			return false
		}
	}
	return true
}

func (p *purity) scoped(stmts []ast.Stmt, names ...string) bool {
	p.block()
	defer p.unblock()
	p.declare(names...)
	return p.stmts(stmts)
}

func (p *purity) stmt(s ast.Stmt) bool {
	switch s := s.(type) {
	case *ast.AssignStmt:
		for _, l := range s.Lhs {
			if id, ok := l.(*ast.IdentExpr); ok && !p.local(id.Value) {
				return false
			}
			p.checkTarget(l)
		}
		if !p.exprs(s.Lhs) || !p.exprs(s.Rhs) {
			return false
		}
		for i, l := range s.Lhs {
			if id, ok := l.(*ast.IdentExpr); ok {
				p.bind(id.Value, exprAt(s.Rhs, i))
			}
		}
		return true
	case *ast.LocalAssignStmt:
		for _, e := range s.Exprs {
			if _, ok := e.(*ast.FunctionExpr); ok {
				p.declare(s.Names...)
			}
		}
		if !p.exprs(s.Exprs) {
			return false
		}
		p.declare(s.Names...)
		for i, name := range s.Names {
			p.bind(name, exprAt(s.Exprs, i))
		}
		return true
	case *ast.FuncDefStmt:
		if id, ok := s.Name.Func.(*ast.IdentExpr); ok && s.Name.Method == "" && !p.local(id.Value) {
			return false
		}
		if s.Name.Method != "" {
			p.checkTarget(&ast.AttrGetExpr{Object: s.Name.Receiver})
		} else {
			p.checkTarget(s.Name.Func)
		}
		return p.expr(s.Name.Func) && p.expr(s.Name.Receiver) && p.function(s.Func)
	case *ast.FuncCallStmt:
		return p.expr(s.Expr)
	case *ast.DoBlockStmt:
		return p.scoped(s.Stmts)
	case *ast.WhileStmt:
		p.unbindAssigned(s.Stmts)
		return p.expr(s.Condition) && p.scoped(s.Stmts)
	case *ast.RepeatStmt:
		p.unbindAssigned(s.Stmts)
		p.block()
		defer p.unblock()
		return p.stmts(s.Stmts) && p.expr(s.Condition)
	case *ast.IfStmt:
		return p.expr(s.Condition) && p.scoped(s.Then) && p.scoped(s.Else)
	case *ast.NumberForStmt:
		p.unbindAssigned(s.Stmts)
		return p.expr(s.Init) && p.expr(s.Limit) && p.expr(s.Step) && p.scoped(s.Stmts, s.Name)
	case *ast.GenericForStmt:
		p.unbindAssigned(s.Stmts)
		return p.exprs(s.Exprs) && p.scoped(s.Stmts, s.Names...)
	case *ast.ReturnStmt:
		return p.exprs(s.Exprs)
	case *ast.LabelStmt, *ast.GotoStmt:
		p.direct = false // jumps defeat the flow-ordered freshness tracking
		return true
	case *ast.BreakStmt:
		return true
	}
	return false
}

func (p *purity) exprs(es []ast.Expr) bool {
	for _, e := range es {
		if !p.expr(e) {
			return false
		}
	}
	return true
}

// expr looks for function literals, whose bodies must be pure too.
func (p *purity) expr(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.IdentExpr:
		if e.Value == "setmetatable" {
			// A fresh table whose __newindex is a host table writes to it.
			p.direct = false
		}
	case *ast.FunctionExpr:
		return p.function(e)
	default: // tables, calls, operators: what they hold
		return p.exprs(subExprs(e))
	}
	return true
}
