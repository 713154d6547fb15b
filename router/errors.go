package router

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
)

// Sentinel causes of routing failures, for [errors.Is].
var (
	// ErrScriptTimeout: a script call ran past its deadline and was stopped.
	// It is [engine.ErrRouterTimeout], the engine's cause for a router that
	// ran out of time.
	ErrScriptTimeout = engine.ErrRouterTimeout
	// ErrBadDecision: a script returned something that names no candidate.
	ErrBadDecision = errors.New("routing script returned an invalid decision")
	// ErrScriptThrottled: the call was not run, because the channel's
	// calls keep timing out and it runs them one at a time (see
	// Limits.MaxConcurrentCalls).
	ErrScriptThrottled = errors.New("routing script not run")
)

// CallError is a call of a script that failed outside the script's code: it
// ran past its deadline (Err is [ErrScriptTimeout]), was not run
// ([ErrScriptThrottled]) or returned something that names no candidate
// ([ErrBadDecision]). It names the version called as data, and renders as
// "SOURCE (LANG HASH12): CAUSE" or "SOURCE (LANG HASH12) returned WHAT:
// CAUSE".
type CallError struct {
	Version engine.RouterVersion // the script called
	// Returned is, for a decision that names no candidate, what the
	// script returned and the candidates it had; "" for other errors.
	Returned string
	Err      error // the cause
}

// Error implements error.
func (e *CallError) Error() string {
	return e.Version.Source + " (" + VersionText(e.Version) + ")" + e.tail()
}

// Brief is the error without the script's source, for a message that names
// it already: "LANG HASH12: CAUSE" or "LANG HASH12 returned WHAT: CAUSE".
func (e *CallError) Brief() string { return VersionText(e.Version) + e.tail() }

func (e *CallError) tail() string {
	if e.Returned != "" {
		return " returned " + e.Returned + ": " + e.Err.Error()
	}
	return ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *CallError) Unwrap() error { return e.Err }

// ScriptError is a compile or runtime error in a routing script, rendered the
// same way for Lua and expr: "FILE:LINE:COL: message (LANG HASH12)", then
// the source line and a caret under the column when they are known. It
// keeps its parts as data to the edge: [ScriptError.Error] is the full form
// for a terminal, [ScriptError.Short] the form for one line of a log.
type ScriptError struct {
	Lang    Lang
	File    string // the script's path, or a name such as "inline" for inline sources
	Line    int    // 1-based; 0 when unknown
	Column  int    // 1-based; 0 when unknown
	Message string // what went wrong, without the place or the version
	Snippet string // the source line, without its newline
	// Version is the script version that failed at run time (a version that
	// only ever fails has no worker_selected line in the journal to name
	// it); zero for compile errors.
	Version engine.RouterVersion
	Err     error // the interpreter's error, when there is one
	// More are the further problems found by the same check, in order,
	// when it can find several in one pass (the Lua name check: every
	// unknown name, not only the first); each has no More of its own. The
	// other fields are the first problem's.
	More []*ScriptError
}

// Error implements error: [ScriptError.Short], then [ScriptError.Excerpt]
// with its caret; then the same for each of More, from a new line.
func (e *ScriptError) Error() string {
	s := e.Short() + e.Excerpt(true)
	for _, m := range e.More {
		s += "\n" + m.Error()
	}
	return s
}

// Short is the error on one line: "FILE:LINE:COL: message (LANG HASH12)",
// without the source line and caret.
func (e *ScriptError) Short() string { return e.Location() + ": " + e.Summary() }

// Summary is the message with the version that failed, when known, and
// without the place: "message (LANG HASH12)".
func (e *ScriptError) Summary() string {
	if e.Version.Hash == "" {
		return e.Message
	}
	return e.Message + " (" + VersionText(e.Version) + ")"
}

// Excerpt returns the source line, on a line of its own after a newline
// and a tab, and below it a caret under the column when withCaret is set
// and the column is known; "" when the line is unknown.
func (e *ScriptError) Excerpt(withCaret bool) string {
	col := e.Column
	if !withCaret {
		col = 0
	}
	return Excerpt(e.Snippet, col)
}

// Excerpt renders a source line below a message: snippet on a line of its
// own after a newline and a tab, and below it a caret under column col
// (1-based) when col is known (not 0); "" when snippet is.
func Excerpt(snippet string, col int) string {
	if snippet == "" {
		return ""
	}
	s := "\n\t" + snippet
	if col > 0 {
		s += "\n\t" + caretPad(snippet, col) + "^"
	}
	return s
}

// Location returns "FILE:LINE:COL", "FILE:LINE" or "FILE", as known.
func (e *ScriptError) Location() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Column)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	return e.File
}

// Unwrap returns the interpreter's error.
func (e *ScriptError) Unwrap() error { return e.Err }

// caretPad returns the white space that puts a caret under column col of
// line, keeping tabs so the caret lines up in a terminal.
func caretPad(line string, col int) string {
	var b strings.Builder
	for i, r := range line {
		if i >= col-1 {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// located makes a runtime's error at a place in a script (a *call.Error,
// which runtimes return as it is, not wrapped) a *ScriptError of lang
// naming file; other errors pass unchanged.
func located(lang Lang, file string, err error) error {
	ce, ok := err.(*call.Error)
	if !ok {
		return err
	}
	se := &ScriptError{Lang: lang, File: file, Line: ce.Line, Column: ce.Column,
		Message: ce.Message, Snippet: ce.Snippet, Err: ce.Err}
	for _, m := range ce.More {
		se.More = append(se.More, located(lang, file, m).(*ScriptError))
	}
	return se
}
