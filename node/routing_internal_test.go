package node

import (
	"testing"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/router"
)

// TestRoutingChanged: a channel's router is swapped when its script, its
// source name or its timeout changes, and when an inline script moved in
// the file (its run-time errors name its lines there).
func TestRoutingChanged(t *testing.T) {
	prog, err := router.NewCompiler(router.Limits{}).Compile(router.Lua, "inline", []byte("function route(r, c) return nil end"))
	if err != nil {
		t.Fatal(err)
	}
	ch := config.Channel{Pos: config.Position{Line: 3, Column: 5}, Routing: config.Routing{Lang: router.Lua, Program: prog, LineOffset: 7}}
	moved := ch
	moved.Routing.LineOffset = 8
	for _, tc := range []struct {
		name string
		next config.Channel
		want bool
	}{
		{"same", ch, false},
		{"script moved", moved, true},
	} {
		if got := routingChanged(ch, tc.next, "dispatch.yaml", "dispatch.yaml"); got != tc.want {
			t.Errorf("%s: routingChanged = %v, want %v", tc.name, got, tc.want)
		}
	}
}
