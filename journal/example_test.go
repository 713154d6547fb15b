package journal_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/router"
)

// Record a dispatch in a journal, then replay it without any worker.
func ExampleReplay() {
	ch, _ := engine.DispatchChannel("prod", "email")
	pool := local.NewPool()
	defer pool.Close(context.Background())
	pool.Start(ch, local.WorkerConfig{ID: "email-1", Handler: func(context.Context, engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte("sent")})
	}})

	var file bytes.Buffer
	w := journal.NewWriter(&file, journal.Options{})
	live, _ := engine.NewDispatcher(engine.Options{Pool: pool, Router: router.NewNative("least-loaded", router.LeastLoaded),
		Conversations: pool, Recorder: journal.Recorder{Writer: w}})
	req := engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "send-email", TaskQueue: "email", Input: engine.Payload{Data: []byte("hi")}}
	live.Dispatch(context.Background(), "prod", req)
	w.Close()

	ops, _, _ := journal.ReadAll(&file)
	replay := journal.NewReplay(ops, nil)
	// Nothing but the journal: the pool here has no workers at all.
	empty := local.NewPool()
	replayer, _ := engine.NewDispatcher(engine.Options{Pool: empty, Router: router.NewNative("least-loaded", router.LeastLoaded),
		Conversations: empty, Recorder: journal.Recorder{Replay: replay}})
	res, err := replayer.Dispatch(context.Background(), "prod", req)
	fmt.Println(len(ops), "operations;", string(res.Output.Data), err)
	// Output: 5 operations; sent <nil>
}
