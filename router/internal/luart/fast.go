package luart

import (
	"context"
	"errors"
	"time"

	"github.com/yuin/gopher-lua/ast"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
	"github.com/aion-dispatch/dispatch/router/internal/luafast"
)

// fastPath is a program's route compiled by package luafast, or why it
// could not be.
type fastPath struct {
	route *luafast.Route
	why   error // why route is nil
}

// compileFast compiles the route of a pure chunk to Go, before the chunk
// is rewritten for the interpreter.
func compileFast(chunk []ast.Stmt, pure bool) fastPath {
	if !pure {
		return fastPath{why: errors.New("luafast: the chunk is not pure")}
	}
	route, err := luafast.Compile(chunk)
	return fastPath{route: route, why: err}
}

// run runs a call on the fast path. done is false when the interpreter must
// run it: there is no fast path, or the call left the subset. The call's
// time on the fast path is taken off *timeout, so that the two runs
// together take no longer than one.
func (fp fastPath) run(ctx context.Context, sel engine.Selection, timeout *time.Duration) (res call.Result, done bool, err error) {
	if fp.route == nil {
		return call.Result{}, false, nil
	}
	if !fp.route.Timed() {
		// No loop: as an untimed expr program, its call reads no clock
		// (see luafast.Route.Timed). Its context still ends it.
		res, err = fp.route.Run(ctx, sel, time.Time{})
		if errors.Is(err, luafast.ErrFallback) {
			return call.Result{}, false, nil
		}
		return res, true, err
	}
	start := time.Now()
	res, err = fp.route.Run(ctx, sel, start.Add(*timeout))
	if errors.Is(err, luafast.ErrFallback) {
		*timeout -= time.Since(start)
		return call.Result{}, false, nil
	}
	return res, true, err
}

// FastPath reports whether calls run on the Go-compiled route (package
// luafast) and, when they do not, why.
func (p *Program) FastPath() (bool, error) { return p.fast.route != nil, p.fast.why }

// Interpreted returns p without its fast path: every call runs in the
// interpreter. The differential tests compare the two.
func (p *Program) Interpreted() *Program {
	return &Program{proto: p.proto, pure: p.pure, direct: p.direct, src: p.src, limits: p.limits,
		fast: fastPath{why: errors.New("luafast: turned off")}}
}
