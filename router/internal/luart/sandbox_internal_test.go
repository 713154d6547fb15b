package luart

import (
	"context"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// testLimits are the router's default limits.
var testLimits = Limits{MaxString: 1 << 20, CallStack: 200, RegistryMax: 1 << 16, PoolSize: 4, CompileTimeout: time.Second}

// TestLuaSandboxLacksAtRunTime: past the compile-time check of names, the
// sandbox itself has none of the forbidden capabilities; each reads as nil.
func TestLuaSandboxLacksAtRunTime(t *testing.T) {
	for _, name := range []string{
		"dofile", "loadfile", "load", "loadstring", "require", "module",
		"collectgarbage", "getfenv", "setfenv", "print", "rawset", "newproxy",
		"io", "os", "debug", "package", "channel", "coroutine", "_G",
		"_printregs", "gcinfo", "string.dump", "math.randomseed", "rawget", "next",
	} {
		t.Run(name, func(t *testing.T) {
			src := `function route(r, c)
  local ok, v = pcall(function() return ` + name + ` end)
  if ok and v == nil then return c[1].id end
  return "present"
end`
			p, err := CompileUnchecked([]byte(src), testLimits)
			if err != nil {
				t.Fatal(err)
			}
			ch, _ := engine.DispatchChannel("prod", "email")
			sel := &engine.Selection{Channel: ch, ConversationID: "c1", Attempt: 1,
				Candidates: []engine.Worker{{State: engine.ConsumerStateView{ID: "w1", MaxInFlight: 1}}}}
			res, err := p.Run(context.Background(), *sel, time.Second)
			if err != nil || res.ID != "w1" {
				t.Errorf("%s is reachable: %+v, %v", name, res, err)
			}
		})
	}
}
