// Package call is what the router and the script runtimes exchange for one
// call of a routing script: what the script sees ([Input]), what it returned
// before the router checks it ([Result]), and how a runtime reports a
// timeout ([ErrTimeout]) or an error at a place in the script ([Error]).
// The router turns these into its exported errors and decisions.
package call

import (
	"fmt"
	"strings"
	"sync"

	"github.com/aion-dispatch/dispatch/engine"
)

// ErrTimeout is what a runtime returns for a call (or a chunk's top-level
// code) stopped at its deadline: [engine.ErrRouterTimeout], which the router
// also exports as router.ErrScriptTimeout.
var ErrTimeout = engine.ErrRouterTimeout

// Limits of a value rendered into a message, in every language: entries
// shown per table or list, tables shown inside one another, and bytes
// overall.
const (
	TextEntries = 16
	TextDepth   = 3
	TextBytes   = 512
)

// Input is what one call of a script sees. A runtime keeps one per
// interpreter and sets Sel for each call.
type Input struct {
	Sel     engine.Selection           // a copy: a pointer would make every caller's Selection escape
	views   []engine.ConsumerStateView // Sel.Candidates' states, once a helper needs them
	viewBuf *[]engine.ConsumerStateView
}

// viewPool recycles the candidate views helpers work on.
var viewPool = sync.Pool{New: func() any { return new([]engine.ConsumerStateView) }}

// Views returns the candidates' states, ids filled in, in order. They are
// built on first use: scripts that read candidates directly never need them.
func (in *Input) Views() []engine.ConsumerStateView {
	if in.views == nil && len(in.Sel.Candidates) > 0 {
		in.viewBuf = viewPool.Get().(*[]engine.ConsumerStateView)
		in.views = views(in.Sel.Candidates, *in.viewBuf)
	}
	return in.views
}

// View returns candidate i's state with its id filled in.
func (in *Input) View(i int) engine.ConsumerStateView {
	w := &in.Sel.Candidates[i]
	v := w.State
	v.ID = w.ID()
	return v
}

// Release returns the views to their pool; call it when the call is over.
func (in *Input) Release() {
	if in.viewBuf != nil {
		clear(in.views)
		*in.viewBuf = in.views[:0]
		viewPool.Put(in.viewBuf)
		in.viewBuf, in.views = nil, nil
	}
}

// views returns the state views of ws, in order.
func views(ws []engine.Worker, into []engine.ConsumerStateView) []engine.ConsumerStateView {
	into = into[:0]
	for i := range ws {
		v := ws[i].State
		v.ID = ws[i].ID()
		into = append(into, v)
	}
	return into
}

// Result is what a script returned, before the router checks it against
// the candidates.
type Result struct {
	ID        string // the chosen id, when the script returned one
	None      bool   // the script returned nil
	Candidate bool   // the script returned a candidate rather than an id
	Other     string // what came back when it was neither an id nor nil
}

// Describe says what the script returned, for error messages.
func (r Result) Describe() string {
	switch {
	case r.Other != "":
		return r.Other
	case r.Candidate:
		return fmt.Sprintf("candidate %q", r.ID)
	case r.ID == "":
		return `"", an empty worker id`
	}
	return fmt.Sprintf("%q", r.ID)
}

// Error is a compile or run-time error at a place in a script, as a
// runtime reports it; the router makes it a router.ScriptError naming the
// script and its language.
type Error struct {
	Line    int    // 1-based; 0 when unknown
	Column  int    // 1-based; 0 when unknown
	Message string // in the script's terms
	Snippet string // the source line, without its newline
	Err     error  // the interpreter's error, when there is one
	// More are the further problems the same check found in the script,
	// in order, when it can find several (the Lua name check); each has
	// no More of its own.
	More []*Error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Message)
	}
	return e.Message
}

// Unwrap returns the interpreter's error.
func (e *Error) Unwrap() error { return e.Err }

// SourceLine returns line n (1-based) of src without its newline, or "".
func SourceLine(src []byte, n int) string {
	if n < 1 {
		return ""
	}
	for i := 1; len(src) > 0; i++ {
		line, rest, _ := strings.Cut(string(src), "\n")
		if i == n {
			return strings.TrimRight(line, "\r")
		}
		src = []byte(rest)
	}
	return ""
}
