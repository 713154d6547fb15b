package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/aion-dispatch/dispatch/broker"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/remote"
	"github.com/aion-dispatch/dispatch/router"
	"github.com/aion-dispatch/dispatch/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A worker that upper-cases its input, on an embedded broker, and one
// dispatch through it.
func Example() {
	ctx := context.Background()
	b, err := broker.Start(ctx, broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Shutdown(ctx)

	// The dispatch side: a transport over the broker, with the system
	// account's connection for the workers' exits.
	nc, _ := b.Connect()
	defer nc.Close()
	sys, _ := b.ConnectSystem()
	defer sys.Close()
	ch, _ := engine.DispatchChannel("prod", "email")
	tr, err := remote.New(ctx, remote.Options{Conn: nc, Advisories: sys, Channels: []engine.ChannelName{ch}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close(ctx)
	d, _ := engine.NewDispatcher(engine.Options{Pool: tr, Conversations: tr, Capacity: tr,
		Router: router.NewNative("least-loaded", router.LeastLoaded)})

	// The worker, usually another program.
	wc, _ := b.Connect()
	defer wc.Close()
	wctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() {
		ran <- worker.Run(wctx, wc, worker.Options{ID: "upper-1", Channels: []string{"prod/email"}, MaxInFlight: 2},
			func(_ context.Context, req engine.ActivityRequest) (engine.ActivityResult, error) {
				out := strings.ToUpper(string(req.Input.Data))
				return engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte(out)}), nil
			})
	}()

	// An activity waits in the backlog until the worker has registered.
	res, err := d.Dispatch(ctx, "prod", engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "shout", TaskQueue: "email",
		Input: engine.Payload{ContentType: "text/plain", Data: []byte("hello")}})
	fmt.Println(string(res.Output.Data), err)

	stop() // drains: deregisters, finishes, returns
	fmt.Println(<-ran)
	// Output:
	// HELLO <nil>
	// <nil>
}
