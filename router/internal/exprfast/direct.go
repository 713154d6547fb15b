package exprfast

import (
	"context"
	"time"

	"github.com/expr-lang/expr/ast"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
	"github.com/aion-dispatch/dispatch/router/internal/pick"
)

// A direct program is the commonest shape of script: a helper that reads
// the candidates in place (leastLoaded and leastLatency of the candidates
// variable, a tag given as a literal), or such calls joined by ??, as in
// `leastLoaded(candidates, "gpu") ?? leastLoaded(candidates)`. Its call
// needs none of a frame's state (no variable, no list built, no random
// draw, no loop of its own to tick), so it runs without one: the same
// package pick functions the compiled closures call, in the same order,
// with the same answer, but no pooled frame to get, clear and put back.

// directCall is one helper call of a direct program.
type directCall struct {
	latency bool   // leastLatency, else leastLoaded
	byTag   bool   // leastLoaded's second argument was given
	tag     string // that argument
}

// pick returns the index of the candidate the call chooses, or -1 (nil).
func (d *directCall) pick(ws []engine.Worker) int {
	if d.latency {
		return pick.LeastLatencyWorkers(ws)
	}
	return pick.LeastLoadedWorkers(ws, d.tag, d.byTag)
}

// directCalls returns the calls of a direct program, in the order ?? tries
// them, or nil when n is not one. n is the program's top node: no let is
// in scope, so no name is shadowed.
func directCalls(n ast.Node) []directCall {
	switch n := n.(type) {
	case *ast.BinaryNode:
		if n.Operator != "??" {
			return nil
		}
		l := directCalls(n.Left)
		r := directCalls(n.Right)
		if l == nil || r == nil {
			return nil
		}
		return append(l, r...)
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || len(n.Arguments) == 0 {
			return nil
		}
		if c, ok := n.Arguments[0].(*ast.IdentifierNode); !ok || c.Value != "candidates" {
			return nil
		}
		switch {
		case id.Value == "leastLatency" && len(n.Arguments) == 1:
			return []directCall{{latency: true}}
		case id.Value == "leastLoaded" && len(n.Arguments) == 1:
			return []directCall{{}}
		case id.Value == "leastLoaded" && len(n.Arguments) == 2:
			if tag, ok := stringLiteral(n.Arguments[1]); ok {
				return []directCall{{byTag: true, tag: tag}}
			}
		}
	}
	return nil
}

// stringLiteral returns the string a literal or a folded constant is.
func stringLiteral(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return n.Value, true
	case *ast.ConstantNode:
		s, ok := n.Value.(string)
		return s, ok
	}
	return "", false
}

// runDirect is [Program.Run] for a direct program: the calls in turn until
// one chooses, then the look at ctx and the deadline every call ends with.
func (p *Program) runDirect(ctx context.Context, ws []engine.Worker, deadline time.Time) (res call.Result, err error) {
	defer func() {
		if r := recover(); r != nil { // a fault of a helper: the VM decides
			res, err = call.Result{}, call.Recovered(r, ErrFallback)
		}
	}()
	i := -1
	for k := range p.direct {
		if i = p.direct[k].pick(ws); i >= 0 {
			break
		}
	}
	// As the frame's check: a call can end past its deadline, and its
	// answer then does not count.
	if err := ctx.Err(); err != nil {
		return call.Result{}, err
	}
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return call.Result{}, call.ErrTimeout
	}
	if i < 0 {
		return call.Result{None: true}, nil
	}
	return call.Result{ID: ws[i].ID()}, nil
}
