package metrics_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/metrics"
)

// Register a node's metrics on a registry of its own, count the operations
// the dispatcher records on their way to the journal, and read a counter
// back. A node serves the registry at /metrics with
// promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).
func ExampleNew() {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Here nil; in a node, the journal's recorder.
	rec := m.Recorder(nil)
	// In a node: engine.Options{Recorder: rec, Router: m.Router(routes), …}.
	ch, _ := engine.DispatchChannel("payments", "charge")
	_ = rec.Record(context.Background(), engine.Operation{Kind: engine.OpWorkerSelected,
		Channel: ch, WorkflowID: "wf-1", ConversationID: "c1", WorkerID: "w1", Attempt: 1})

	fams, err := reg.Gather()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range fams {
		if f.GetName() != "dispatch_decisions_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			fmt.Print(f.GetName(), "{")
			for i, l := range s.GetLabel() {
				if i > 0 {
					fmt.Print(",")
				}
				fmt.Printf("%s=%q", l.GetName(), l.GetValue())
			}
			fmt.Println("}", s.GetCounter().GetValue())
		}
	}
	// Output: dispatch_decisions_total{channel="payments/charge",worker="w1"} 1
}
