package router_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/router"
	"github.com/aion-dispatch/dispatch/router/internal/names"
)

// args writes a call's arguments for params ("list [, tag]"), every one
// of them, in a language: arg maps a parameter to its expression there.
func args(n names.Name, arg map[string]string) string {
	params := strings.NewReplacer("[", "", "]", "", ", …", "").Replace(n.Params)
	var out []string
	for _, p := range strings.Split(params, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, arg[p])
		}
	}
	return strings.Join(out, ", ")
}

var (
	luaArgs  = map[string]string{"list": "c", "tag": `"gpu"`, "key": `"k"`, "c": "c[1]", "s": `'{"a": 1}'`, "a": `"a"`, "b": `"b"`, "max_error_rate": "0.5"}
	exprArgs = map[string]string{"list": "candidates", "tag": `"gpu"`, "key": `"k"`, "c": "candidates[0]", "s": `'{"a": 1}'`, "a": `"a"`, "b": `"b"`, "max_error_rate": "0.5"}
)

// TestEveryNameIsReachable: each row of the table of names is there, in
// each language that names it, when a script runs (a field is not nil, a
// method or helper called with all its arguments does not fail); a row
// one language does not name (an empty name) is refused there when the
// script is compiled.
func TestEveryNameIsReachable(t *testing.T) {
	sel := selection(t, worker("w1", 0, 4, 0, "gpu"), worker("w2", 1, 4, 0))
	for _, n := range names.All() {
		var luaExpr, exprExpr, luaAbsent, exprAbsent string
		switch n.Kind {
		case names.RequestField:
			luaExpr, exprExpr = "r."+n.Lua+" ~= nil", "request."+n.Expr+` != nil`
			luaAbsent, exprAbsent = "r."+n.Expr+" ~= nil", "request."+n.Lua+` != nil`
		case names.CandidateField:
			luaExpr, exprExpr = "c[1]."+n.Lua+" ~= nil", "candidates[0]."+n.Expr+` != nil`
			luaAbsent, exprAbsent = "c[1]."+n.Expr+" ~= nil", "candidates[0]."+n.Lua+` != nil`
		case names.CandidateMethod:
			luaExpr = fmt.Sprintf("c[1]:%s(%s) ~= nil", n.Lua, args(n, luaArgs))
			exprAbsent = fmt.Sprintf("candidates[0].%s(%s) != nil", n.Lua, args(n, exprArgs))
		case names.Helper:
			luaExpr = fmt.Sprintf("dispatch.%s(%s) ~= 0", n.Lua, args(n, luaArgs))
			exprExpr = fmt.Sprintf("%s(%s) != 0", n.Expr, args(n, exprArgs))
			luaAbsent = fmt.Sprintf("dispatch.%s(%s) ~= 0", n.Expr, args(n, luaArgs))
			exprAbsent = fmt.Sprintf("%s(%s) != 0", n.Lua, args(n, exprArgs))
		}
		t.Run(fmt.Sprintf("%d/%s/%s", n.Kind, n.Lua, n.Expr), func(t *testing.T) {
			luaSrc := func(cond string) string {
				return "function route(r, c)\n  if " + cond + " then return c[1].id end\nend"
			}
			exprSrc := func(cond string) string { return cond + ` ? candidates[0].id : nil` }
			check := func(lang router.Lang, src string) {
				d, err := compile(t, lang, src).Select(context.Background(), sel)
				if err != nil || d.WorkerID != "w1" {
					t.Errorf("%s %q: %+v, %v; want w1", lang, src, d, err)
				}
			}
			refused := func(lang router.Lang, src string) {
				if _, err := router.NewCompiler(router.Limits{}).Compile(lang, "test."+string(lang), []byte(src)); err == nil {
					t.Errorf("%s %q compiles: the table says %s has no such name", lang, src, lang)
				}
			}
			if n.Lua != "" {
				check(router.Lua, luaSrc(luaExpr))
			} else {
				refused(router.Lua, luaSrc(luaAbsent))
			}
			switch {
			case n.Expr != "":
				check(router.Expr, exprSrc(exprExpr))
			case exprAbsent != "":
				refused(router.Expr, exprSrc(exprAbsent))
			}
		})
	}
}
