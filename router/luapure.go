package router

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

// pureChunk reports whether stmts qualify for running once.
func pureChunk(stmts []ast.Stmt) bool {
	p := &purity{}
	p.enter()
	for _, s := range stmts {
		if !p.topLevel(s) {
			return false
		}
	}
	return true
}

// purity walks function bodies, tracking which names are local to the
// function being walked.
type purity struct {
	funcs [][]map[string]bool // per function, its block scopes
}

func (p *purity) enter()                 { p.funcs = append(p.funcs, []map[string]bool{{}}) }
func (p *purity) leave()                 { p.funcs = p.funcs[:len(p.funcs)-1] }
func (p *purity) block()                 { f := p.cur(); p.funcs[len(p.funcs)-1] = append(f, map[string]bool{}) }
func (p *purity) unblock()               { f := p.cur(); p.funcs[len(p.funcs)-1] = f[:len(f)-1] }
func (p *purity) cur() []map[string]bool { return p.funcs[len(p.funcs)-1] }
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
		}
		return p.exprs(s.Lhs) && p.exprs(s.Rhs)
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
		return true
	case *ast.FuncDefStmt:
		if id, ok := s.Name.Func.(*ast.IdentExpr); ok && s.Name.Method == "" && !p.local(id.Value) {
			return false
		}
		return p.expr(s.Name.Func) && p.expr(s.Name.Receiver) && p.function(s.Func)
	case *ast.FuncCallStmt:
		return p.expr(s.Expr)
	case *ast.DoBlockStmt:
		return p.scoped(s.Stmts)
	case *ast.WhileStmt:
		return p.expr(s.Condition) && p.scoped(s.Stmts)
	case *ast.RepeatStmt:
		p.block()
		defer p.unblock()
		return p.stmts(s.Stmts) && p.expr(s.Condition)
	case *ast.IfStmt:
		return p.expr(s.Condition) && p.scoped(s.Then) && p.scoped(s.Else)
	case *ast.NumberForStmt:
		return p.expr(s.Init) && p.expr(s.Limit) && p.expr(s.Step) && p.scoped(s.Stmts, s.Name)
	case *ast.GenericForStmt:
		return p.exprs(s.Exprs) && p.scoped(s.Stmts, s.Names...)
	case *ast.ReturnStmt:
		return p.exprs(s.Exprs)
	case *ast.BreakStmt, *ast.LabelStmt, *ast.GotoStmt:
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
	case *ast.FunctionExpr:
		return p.function(e)
	case *ast.AttrGetExpr:
		return p.expr(e.Object) && p.expr(e.Key)
	case *ast.TableExpr:
		for _, f := range e.Fields {
			if !p.expr(f.Key) || !p.expr(f.Value) {
				return false
			}
		}
	case *ast.FuncCallExpr:
		return p.expr(e.Func) && p.expr(e.Receiver) && p.exprs(e.Args)
	case *ast.LogicalOpExpr:
		return p.expr(e.Lhs) && p.expr(e.Rhs)
	case *ast.RelationalOpExpr:
		return p.expr(e.Lhs) && p.expr(e.Rhs)
	case *ast.ArithmeticOpExpr:
		return p.expr(e.Lhs) && p.expr(e.Rhs)
	case *ast.StringConcatOpExpr:
		return p.expr(e.Lhs) && p.expr(e.Rhs)
	case *ast.UnaryMinusOpExpr:
		return p.expr(e.Expr)
	case *ast.UnaryNotOpExpr:
		return p.expr(e.Expr)
	case *ast.UnaryLenOpExpr:
		return p.expr(e.Expr)
	}
	return true
}
