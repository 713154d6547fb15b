package exprrt

import (
	"context"
	"errors"
	"time"

	"github.com/expr-lang/expr/ast"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
	"github.com/aion-dispatch/dispatch/router/internal/exprfast"
)

// fastPath is a program compiled by package exprfast, or why it could not
// be.
type fastPath struct {
	prog *exprfast.Program
	why  error // why prog is nil
}

// compileFast compiles the checked and optimized program's node to Go.
func compileFast(node ast.Node, limits Limits) fastPath {
	prog, err := exprfast.Compile(node, limits.MemoryBudget)
	return fastPath{prog: prog, why: err}
}

// run runs a call on the fast path. done is false when the VM must run it:
// there is no fast path, or the call left the subset. A timed program's
// time on the fast path is taken off *timeout, so that the two runs
// together take no longer than one.
func (fp fastPath) run(sel *engine.Selection, timed bool, timeout *time.Duration) (res call.Result, done bool, err error) {
	if fp.prog == nil {
		return call.Result{}, false, nil
	}
	// An untimed program (helpers, members and operators only) runs no
	// loop of its own: as in the VM, its call reads no clock.
	var start, deadline time.Time
	if timed {
		start = time.Now()
		deadline = start.Add(*timeout)
	}
	// The VM does not look at ctx (the router did before the call): nor
	// does the fast path, so that both answer the same.
	res, err = fp.prog.RunSelection(context.Background(), sel, deadline)
	if errors.Is(err, exprfast.ErrFallback) {
		if timed {
			*timeout -= time.Since(start)
		}
		return call.Result{}, false, nil
	}
	return res, true, err
}

// FastPath reports whether calls run on the Go-compiled program (package
// exprfast) and, when they do not, why.
func (p *Program) FastPath() (bool, error) { return p.fast.prog != nil, p.fast.why }

// Interpreted returns p without its fast path: every call runs in the VM.
// The differential tests compare the two.
func (p *Program) Interpreted() *Program {
	return &Program{prog: p.prog, src: p.src, limits: p.limits, timed: p.timed, readsCandidates: p.readsCandidates,
		fast: fastPath{why: errors.New("exprfast: turned off")}}
}

// FastProgram returns the Go-compiled program calls try first, or nil: the
// differential tests run it alone.
func (p *Program) FastProgram() *exprfast.Program { return p.fast.prog }
