package journal_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/journal/internal/gen"
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
				var out *timedFile
				if mode != "none" {
					fsync, _ := journal.ParseFsync(mode)
					f, err := os.Create(filepath.Join(b.TempDir(), "j.jsonl"))
					if err != nil {
						b.Fatal(err)
					}
					out = &timedFile{File: f}
					w = journal.NewWriter(out, journal.Options{Fsync: fsync})
					rec = journal.Recorder{Writer: w}
				}
				d, err := engine.NewDispatcher(engine.Options{Pool: pool, Router: router.NewNative("least-loaded", router.LeastLoaded),
					Conversations: pool, Capacity: pool, Recorder: rec})
				if err != nil {
					b.Fatal(err)
				}
				req := engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "send-email", TaskQueue: "email",
					Input: engine.Payload{ContentType: "application/json", Data: []byte(`{"to":"a@example.com"}`)}}
				b.ReportAllocs()
				b.SetParallelism(par)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := d.Dispatch(context.Background(), "prod", req); err != nil {
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
				secs := b.Elapsed().Seconds()
				b.ReportMetric(float64(b.N)/secs, "dispatches/s")
				if out != nil {
					b.ReportMetric(float64(out.bytes)/float64(b.N), "journal-B/dispatch")
					b.ReportMetric(float64(out.syncs)/secs, "syncs/s")
					// the share of the time the flusher spent in write and
					// sync calls, and in sync calls
					b.ReportMetric((out.writing+out.syncing).Seconds()/secs, "flusher-busy")
					b.ReportMetric(out.syncing.Seconds()/secs, "sync-busy")
				}
			})
		}
	}
}

// timedFile counts what a journal writes and syncs, and the time it spends
// in write and in sync calls. Only the journal's flusher calls it, so it
// needs no lock.
type timedFile struct {
	*os.File
	bytes, syncs     int64
	writing, syncing time.Duration
}

func (f *timedFile) Write(p []byte) (int, error) {
	start := time.Now()
	n, err := f.File.Write(p)
	f.writing += time.Since(start)
	f.bytes += int64(n)
	return n, err
}

func (f *timedFile) Sync() error {
	start := time.Now()
	err := f.File.Sync()
	f.syncing += time.Since(start)
	f.syncs++
	return err
}

// BenchmarkSyncedAppend measures what this disk can make durable in the
// flusher's pattern (append a batch, fsync, repeat), for batch sizes around
// those the journal writes under load: the ceiling of FsyncBatch.
func BenchmarkSyncedAppend(b *testing.B) {
	for _, kib := range []int{64, 256, 1024} {
		b.Run(fmt.Sprintf("%dKiB", kib), func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "synced"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			buf := bytes.Repeat([]byte("x"), kib<<10)
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if _, err := f.Write(buf); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify checks and replays a generated journal (64 conversations
// open at once) as dispatch replay does, and what-if re-runs its decisions
// on one channel through the native least-loaded policy; per journal byte
// (MB/s) and per line.
func BenchmarkVerify(b *testing.B) {
	raw, err := io.ReadAll(gen.New(gen.Options{Bytes: 8 << 20, Open: 64, Seed: 1}))
	if err != nil {
		b.Fatal(err)
	}
	lines := bytes.Count(raw, []byte("\n"))
	ch := channel(b)
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"verify", func() error {
			rep, err := journal.Verify(context.Background(), bytes.NewReader(raw))
			if err == nil && rep.Problems > 0 {
				err = rep.First
			}
			return err
		}},
		{"what-if", func() error {
			r := journal.NewReader(bytes.NewReader(raw))
			journal.WhatIf(context.Background(), r.All(), ch, router.NewNative("least-loaded", router.LeastLoaded), journal.WhatIfOptions{})
			return r.Err()
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if err := tc.run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
		})
	}
}
