package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/node"
)

// A node runs a config's channels with their simulated workers; here the
// first worker exits on everything it gets, so the activity is re-routed.
func Example() {
	cfg, err := config.Parse("dispatch.yaml", []byte(`version: 1
channels:
  - namespace: prod
    task_queue: email
    routing: {lang: lua, source: "function route(r, c) return c[1].id end"}
    workers:
      - {id: flaky, behavior: {exit_rate: 1}}
      - {id: steady}
`), config.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	n, err := node.New(cfg, node.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer n.Close(context.Background())

	res, err := n.Dispatch(context.Background(), "prod", engine.ActivityRequest{
		WorkflowID: "wf-1", ActivityType: "send", TaskQueue: "email",
		Input: engine.Payload{ContentType: "text/plain", Data: []byte("hello")},
	})
	fmt.Println(res.Status, err)
	for _, w := range n.Stats().Workers {
		fmt.Printf("%s: selected %d, completed %d, exits %d, re-routed %d\n", w.Worker, w.Selected, w.Completed, w.Exits, w.Rerouted)
	}
	// Output:
	// completed <nil>
	// flaky: selected 1, completed 0, exits 1, re-routed 1
	// steady: selected 1, completed 1, exits 0, re-routed 0
}
