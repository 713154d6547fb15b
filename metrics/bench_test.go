package metrics_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/metrics"
)

// nopRecorder records nothing: the baseline a recorder's cost is read
// against.
type nopRecorder struct{}

func (nopRecorder) Record(context.Context, engine.Operation) error { return nil }
func (nopRecorder) ReplayOutcome(context.Context, engine.ChannelName, engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	return engine.RecordedOutcome{}, false, nil
}

// benchOps returns the operations of conversations on 4 channels with 8
// workers each, every kind the families count among them: a re-routed
// conversation, a waited selection, completed and failed closes.
func benchOps(b *testing.B) []engine.Operation {
	var ops []engine.Operation
	for c := range 4 {
		ch := channel(b, "ns", fmt.Sprintf("q%d", c))
		for w := range 8 {
			one := history(b) // conversations on payments/charge and mail/send
			for i := range one {
				one[i].Channel = ch
				if one[i].WorkerID != "" {
					one[i].WorkerID = fmt.Sprintf("%s-%d", one[i].WorkerID, w)
				}
			}
			ops = append(ops, one...)
		}
	}
	return ops
}

// BenchmarkRecorder is the cost of one operation: through a recorder that
// does nothing (baseline) and through the metrics recorder in front of it
// (metrics), one goroutine and many.
func BenchmarkRecorder(b *testing.B) {
	ops := benchOps(b)
	m, _ := newMetrics(b, metrics.Options{})
	recorders := []struct {
		name string
		rec  engine.Recorder
	}{
		{"baseline", nopRecorder{}},
		{"metrics", m.Recorder(nopRecorder{})},
	}
	for _, r := range recorders {
		b.Run(r.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = r.rec.Record(ctx, ops[i])
				if i++; i == len(ops) {
					i = 0
				}
			}
		})
	}
	for _, r := range recorders {
		b.Run(r.name+"-parallel", func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					_ = r.rec.Record(ctx, ops[i])
					if i++; i == len(ops) {
						i = 0
					}
				}
			})
		})
	}
}

// BenchmarkRouter is the cost the wrapper adds to a Select: a router that
// answers at once, bare (baseline) and wrapped (metrics).
func BenchmarkRouter(b *testing.B) {
	m, _ := newMetrics(b, metrics.Options{})
	ch := channel(b, "payments", "charge")
	in := selection(b, ch)
	next := stubRouter{d: engine.Decision{WorkerID: "w1", Version: engine.RouterVersion{Lang: "lua", Hash: "sha256:0123456789abcdef"}}}
	for _, r := range []struct {
		name string
		r    engine.Router
	}{{"baseline", next}, {"metrics", m.Router(next)}} {
		b.Run(r.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				_, _ = r.r.Select(ctx, in)
			}
		})
	}
}
