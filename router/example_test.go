package router_test

import (
	"context"
	"fmt"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// Compile a Lua routing script once and ask it for a decision.
func ExampleScript() {
	src := []byte(`
-- prefer GPU workers; among them, the least loaded
function route(request, candidates, excluded)
  return dispatch.least_loaded(candidates, "gpu") or dispatch.least_loaded(candidates)
end`)
	prog, err := router.NewCompiler(router.Limits{}).Compile(router.Lua, "gpu_first.lua", src)
	if err != nil {
		fmt.Println(err)
		return
	}
	script := router.NewScript(prog, "gpu_first.lua", 20*time.Millisecond)
	ch, _ := engine.DispatchChannel("prod", "render")
	d, err := script.Select(context.Background(), engine.Selection{
		WorkflowID: "wf-1", Channel: ch, ConversationID: "c1", Attempt: 1,
		Candidates: []engine.Worker{
			{State: engine.ConsumerStateView{ID: "cpu-1", MaxInFlight: 4}},
			{State: engine.ConsumerStateView{ID: "gpu-1", InFlight: 3, MaxInFlight: 4, Tags: []string{"gpu"}}},
			{State: engine.ConsumerStateView{ID: "gpu-2", InFlight: 1, MaxInFlight: 4, Tags: []string{"gpu"}}},
		},
	})
	fmt.Println(d.WorkerID, d.Version.Lang, d.Version.Source, err)
	// Output: gpu-2 lua gpu_first.lua <nil>
}

// A broken script is one error type, with its place and the source line.
func ExampleScriptError() {
	_, err := router.NewCompiler(router.Limits{}).Compile(router.Expr, "canary.expr", []byte(`leastLoded(candidates)`))
	fmt.Println(err)
	// Output:
	// canary.expr:1:1: unknown name leastLoded (did you mean leastLoaded?)
	// 	leastLoded(candidates)
	// 	^
}
