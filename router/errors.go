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

// ScriptError is a compile or runtime error in a routing script, rendered the
// same way for Lua and expr: "FILE:LINE:COL: message", then the source line
// and a caret under the column when they are known.
type ScriptError struct {
	Lang    Lang
	File    string // the script's path, or a name such as "inline" for inline sources
	Line    int    // 1-based; 0 when unknown
	Column  int    // 1-based; 0 when unknown
	Message string
	Snippet string // the source line, without its newline
	Err     error  // the interpreter's error, when there is one
}

// Error implements error.
func (e *ScriptError) Error() string {
	var b strings.Builder
	b.WriteString(e.Location())
	b.WriteString(": ")
	b.WriteString(e.Message)
	b.WriteString(e.Excerpt(true))
	return b.String()
}

// Excerpt returns the source line, on a line of its own after a newline
// and a tab, and below it a caret under the column when withCaret is set
// and the column is known; "" when the line is unknown.
func (e *ScriptError) Excerpt(withCaret bool) string {
	if e.Snippet == "" {
		return ""
	}
	s := "\n\t" + e.Snippet
	if withCaret && e.Column > 0 {
		s += "\n\t" + caretPad(e.Snippet, e.Column) + "^"
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
	return &ScriptError{Lang: lang, File: file, Line: ce.Line, Column: ce.Column,
		Message: ce.Message, Snippet: ce.Snippet, Err: ce.Err}
}
