package luacheck

import "github.com/yuin/gopher-lua/ast"

// subExprs returns the expressions directly inside e, in source order,
// without entering a function literal's body (its statements are not
// expressions). The AST walkers share it for the cases they treat alike.
func subExprs(e ast.Expr) []ast.Expr {
	var out []ast.Expr
	add := func(es ...ast.Expr) {
		for _, x := range es {
			if x != nil {
				out = append(out, x)
			}
		}
	}
	switch e := e.(type) {
	case *ast.AttrGetExpr:
		add(e.Object, e.Key)
	case *ast.TableExpr:
		for _, f := range e.Fields {
			add(f.Key, f.Value)
		}
	case *ast.FuncCallExpr:
		add(e.Func, e.Receiver)
		add(e.Args...)
	case *ast.LogicalOpExpr:
		add(e.Lhs, e.Rhs)
	case *ast.RelationalOpExpr:
		add(e.Lhs, e.Rhs)
	case *ast.ArithmeticOpExpr:
		add(e.Lhs, e.Rhs)
	case *ast.StringConcatOpExpr:
		add(e.Lhs, e.Rhs)
	case *ast.UnaryMinusOpExpr:
		add(e.Expr)
	case *ast.UnaryNotOpExpr:
		add(e.Expr)
	case *ast.UnaryLenOpExpr:
		add(e.Expr)
	}
	return out
}
