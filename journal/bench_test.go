package journal_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/router"
)

// BenchmarkRecord measures journal throughput per fsync setting, writing a
// representative mix of operations (one dispatch's worth) to a real file.
func BenchmarkRecord(b *testing.B) {
	ops := sampleOps(b)
	for _, mode := range []journal.Fsync{journal.FsyncNever, journal.FsyncInterval, journal.FsyncBatch} {
		for _, parallel := range []bool{false, true} {
			name := mode.String() + "/sequential"
			if parallel {
				name = mode.String() + "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				w, _, err := journal.Open(filepath.Join(b.TempDir(), "j.jsonl"), journal.Options{Fsync: mode})
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				b.ReportAllocs()
				if parallel {
					b.SetParallelism(8) // 16 recording goroutines on 2 cores: group commit at work
					b.RunParallel(func(pb *testing.PB) {
						i := 0
						for pb.Next() {
							if err := w.Record(ctx, ops[i%len(ops)]); err != nil {
								b.Error(err)
								return
							}
							i++
						}
					})
				} else {
					i := 0
					for b.Loop() {
						if err := w.Record(ctx, ops[i%len(ops)]); err != nil {
							b.Fatal(err)
						}
						i++
					}
				}
				b.StopTimer()
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			})
		}
	}
}

// BenchmarkDispatchJournaled measures what the journal adds to a dispatch
// over in-process workers, per fsync setting, against no journal at all.
func BenchmarkDispatchJournaled(b *testing.B) {
	ch := channel(b)
	for _, mode := range []string{"none", "never", "interval", "batch"} {
		for _, par := range []int{8, 128, 1024} {
			b.Run(fmt.Sprintf("%s/goroutines=%d", mode, 2*par), func(b *testing.B) {
				pool := local.NewPool()
				b.Cleanup(func() { pool.Close(context.Background()) })
				for i := range 4 {
					pool.Start(ch, local.WorkerConfig{ID: fmt.Sprintf("w%d", i), MaxInFlight: 8, Handler: func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
						return engine.Completed(req.Input)
					}})
				}
				var rec engine.Recorder
				var w *journal.Writer
				if mode != "none" {
					fsync, _ := journal.ParseFsync(mode)
					var err error
					w, _, err = journal.Open(filepath.Join(b.TempDir(), "j.jsonl"), journal.Options{Fsync: fsync})
					if err != nil {
						b.Fatal(err)
					}
					rec = journal.Recorder{Writer: w}
				}
				d, err := engine.NewDispatcher(engine.Options{Pool: pool, Router: router.NewNative("least-loaded", router.LeastLoaded),
					Conversations: pool, Recorder: rec})
				if err != nil {
					b.Fatal(err)
				}
				req := engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "send-email", TaskQueue: "email",
					Input: engine.Payload{ContentType: "application/json", Data: []byte(`{"to":"a@example.com"}`)}}
				b.ReportAllocs()
				b.SetParallelism(par)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := d.Dispatch(context.Background(), "prod", "email", req); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				if w != nil {
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "dispatches/s")
			})
		}
	}
}
