package config

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aion-dispatch/dispatch/router"
)

// oneLine renders the problems of a failed reload from their parts: each
// one's Short form, joined by "; ", never a source line or caret.
func TestOneLine(t *testing.T) {
	se := &router.ScriptError{Lang: router.Lua, File: "pick.lua", Line: 2, Column: 14, Message: "syntax error near 'id'", Snippet: "  return c[1.id"}
	es := Errors{
		{File: "pick.lua", Line: 2, Column: 14, Msg: se.Message, Snippet: se.Snippet, Caret: se.Column, Err: se},
		{File: "dispatch.yaml", Line: 7, Msg: "unknown key \"colour\""},
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{es, "pick.lua:2:14: syntax error near 'id'; dispatch.yaml:7: unknown key \"colour\""},
		{errors.Join(fmt.Errorf("apply dispatch.yaml: %w", errors.New("node: closed")), es),
			"apply dispatch.yaml: node: closed; pick.lua:2:14: syntax error near 'id'; dispatch.yaml:7: unknown key \"colour\""},
		{errors.New("config dispatch.yaml is empty"), "config dispatch.yaml is empty"},
	} {
		if got := oneLine(tc.err); got != tc.want {
			t.Errorf("oneLine(%q) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if want := "pick.lua:2:14: syntax error near 'id'\n\t  return c[1.id\n\t             ^\ndispatch.yaml:7: unknown key \"colour\""; es.Error() != want {
		t.Errorf("Error() = %q, want %q", es.Error(), want)
	}
}
