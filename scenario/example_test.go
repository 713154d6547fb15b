package scenario_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aion-dispatch/dispatch/scenario"
)

// Run a scenario and look at its journal; Check compares it with the golden
// one instead.
func ExampleRun() {
	dir, _ := os.MkdirTemp("", "scenario")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "exit.yaml")
	os.WriteFile(path, []byte(`version: 1
channels:
  - namespace: prod
    task_queue: email
    routing: {lang: lua, source: "function route(r, c) return c[1].id end"}
workers:
  - {channel: prod/email, id: w1, script: [{exit: crashed}]}
  - {channel: prod/email, id: w2, script: [{complete: sent}]}
steps:
  - request: {channel: prod/email, workflow_id: wf-1, activity_type: send}
`), 0o644)

	s, err := scenario.Load(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	ops, err := scenario.Run(context.Background(), s)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, op := range ops {
		fmt.Println(strings.TrimSpace(fmt.Sprint(op.Seq, " ", op.ConversationID, " ", op.Kind, " ", op.WorkerID, " ", op.Message)))
	}
	// Output:
	// 1 c1 conversation_opened
	// 2 c1 worker_selected w1
	// 3 c1 message_sent w1
	// 4 c1 worker_exited w1 crashed
	// 5 c1 worker_selected w2
	// 6 c1 message_sent w2
	// 7 c1 message_received w2
	// 8 c1 conversation_closed w2
}
