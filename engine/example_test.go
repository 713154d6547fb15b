package engine_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/router"
)

// A dispatcher over two in-process workers: the first crashes, the
// conversation sees the exit through its link and re-routes to the second.
func ExampleDispatcher() {
	ch, err := engine.DispatchChannel("prod", "email")
	if err != nil {
		panic(err)
	}
	pool := local.NewPool()
	defer pool.Close(context.Background())

	pool.Start(ch, local.WorkerConfig{ID: "email-1", Handler: func(context.Context, engine.ActivityRequest) engine.ActivityResult {
		panic("smtp client crashed")
	}})
	pool.Start(ch, local.WorkerConfig{ID: "email-2", Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte("sent to " + string(req.Input.Data))})
	}})

	d, err := engine.NewDispatcher(engine.Options{
		Pool:          pool,
		Router:        router.NewNative("least-loaded", router.LeastLoaded),
		Conversations: pool,
	})
	if err != nil {
		panic(err)
	}
	res, err := d.Dispatch(context.Background(), "prod", engine.ActivityRequest{
		WorkflowID:   "wf-1",
		ActivityType: "send-email",
		TaskQueue:    "email",
		Input:        engine.Payload{ContentType: "text/plain", Data: []byte("a@example.com")},
		StartToClose: 2 * time.Second,
	})
	fmt.Println(res.Status, string(res.Output.Data), err)

	// With every worker gone, the error says so.
	pool.Remove(ch, "email-2")
	_, err = d.Dispatch(context.Background(), "prod", engine.ActivityRequest{WorkflowID: "wf-2", TaskQueue: "email"})
	fmt.Println(errors.Is(err, engine.ErrNoWorkers))
	fmt.Println(err)
	// Output:
	// completed sent to a@example.com <nil>
	// true
	// dispatch prod/email workflow wf-2: NoWorkersAvailable: no workers subscribed
}
