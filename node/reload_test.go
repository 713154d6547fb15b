package node_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/node"
	"github.com/aion-dispatch/dispatch/router"
)

// version i of the script picks the (i%3+1)-th candidate; the comment makes
// every version's hash different.
func pickScript(i int) string {
	return fmt.Sprintf("-- version %d\nfunction route(r, c) return c[%d].id end\n", i, i%3+1)
}

// reloadRig is a node whose config is watched on disk.
type reloadRig struct {
	script   string
	outcomes chan config.Outcome
	n        *node.Node
	w        *config.Watcher
}

// newReloadRig starts the rig; debounce 0 means the watcher's default.
func newReloadRig(t testing.TB, rec engine.Recorder, debounce time.Duration) *reloadRig {
	t.Helper()
	// About swaps, not deadlines: no timeout under a starved -race run.
	return startReloadRig(t, rigOptions{rec: rec, debounce: debounce, timeout: "1s"})
}

// rigOptions configure a reloadRig.
type rigOptions struct {
	rec      engine.Recorder
	debounce time.Duration
	timeout  string // the channel's script_timeout
	gate     bool   // watch with the node's reload gate
}

func startReloadRig(t testing.TB, opts rigOptions) *reloadRig {
	t.Helper()
	rec, debounce := opts.rec, opts.debounce
	dir := t.TempDir()
	rig := &reloadRig{script: filepath.Join(dir, "pick.lua"), outcomes: make(chan config.Outcome, 16)}
	conf := filepath.Join(dir, "dispatch.yaml")
	for name, body := range map[string]string{
		rig.script: pickScript(0),
		conf: `version: 1
defaults: {script_timeout: ` + opts.timeout + `}
channels:
  - namespace: prod
    task_queue: email
    routing: {lua: pick.lua}
    workers: [{id: w1, max_in_flight: 4}, {id: w2, max_in_flight: 4}, {id: w3, max_in_flight: 4}]
`,
	} {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	compiler := router.NewCompiler(router.Limits{})
	cfg, err := config.Load(conf, config.Options{Compiler: compiler})
	if err != nil {
		t.Fatal(err)
	}
	nopts := node.Options{Recorder: rec, Logger: quiet}
	if opts.gate {
		nopts.RecentDecisions = router.DefaultRecentDecisions
	}
	rig.n, err = node.New(cfg, nopts)
	if err != nil {
		t.Fatal(err)
	}
	var gate config.GateFunc
	if opts.gate {
		gate = rig.n.Gate
	}
	rig.w, err = config.NewWatcher(cfg, config.WatchOptions{Options: config.Options{Compiler: compiler}, Apply: rig.n.Apply,
		Gate: gate, Debounce: debounce, Logger: quiet, Notify: func(o config.Outcome) {
			if o.Kind == config.Reloaded || o.Kind == config.Failed {
				rig.outcomes <- o
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := rig.w.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := rig.n.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return rig
}

// save writes the script and waits for the watcher to load or reject it.
func (rig *reloadRig) save(t testing.TB, body string) config.Outcome {
	t.Helper()
	if err := os.WriteFile(rig.script, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-rig.outcomes:
		return o
	case <-time.After(20 * time.Second): // a hang guard, not a timing
		t.Fatal("the save was never loaded nor rejected")
		return config.Outcome{}
	}
}

// TestSwapUnderLoad swaps the script 100 times, alternating new versions and
// broken ones, while dispatches run without pause: none may fail, and every
// decision must be the one the version that made it (named by its hash in
// the journal) prescribes, with versions only ever moving forward.
func TestSwapUnderLoad(t *testing.T) {
	rec := &recorder{}
	rig := newReloadRig(t, rec, 5*time.Millisecond)

	hashes := map[string]int{router.Hash(router.Lua, []byte(pickScript(0))): 0} // hash -> version
	ctx, stop := context.WithCancel(context.Background())
	const dispatchers = 4
	var wg sync.WaitGroup
	failures := make(chan error, dispatchers)
	counts := make([]int, dispatchers)
	for g := range dispatchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if _, err := rig.n.Dispatch(context.Background(), "prod", request("email", fmt.Sprintf("wf-%d-%d", g, i))); err != nil {
					failures <- err
					return
				}
				counts[g]++
			}
		}()
	}

	version := 0
	for i := range 100 {
		if i%2 == 0 {
			version++
			body := pickScript(version)
			hashes[router.Hash(router.Lua, []byte(body))] = version
			if o := rig.save(t, body); o.Kind != config.Reloaded {
				t.Fatalf("swap %d: %s: %v", i, o.Kind, o.Err)
			}
		} else {
			if o := rig.save(t, fmt.Sprintf("-- broken %d\nfunction route(r, c) return c[1.id end\n", i)); o.Kind != config.Failed {
				t.Fatalf("swap %d: a broken script was %s", i, o.Kind)
			}
		}
	}
	stop()
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Errorf("a dispatch failed during the swaps: %v", err)
	}

	last := map[string]int{} // workflow goroutine prefix -> last version seen
	seen := map[int]bool{}
	for _, op := range rec.selections() {
		v, ok := hashes[op.Router.Hash]
		if !ok {
			t.Fatalf("decision by an unknown version %s (a broken script?)", op.Router.Hash)
		}
		seen[v] = true
		if want := fmt.Sprintf("w%d", v%3+1); op.WorkerID != want {
			t.Fatalf("version %d chose %s, but it picks %s", v, op.WorkerID, want)
		}
		g := op.WorkflowID[:len("wf-0")]
		if v < last[g] {
			t.Fatalf("dispatcher %s went back from version %d to %d", g, last[g], v)
		}
		last[g] = v
	}
	if s := rig.w.Stats(); s.Reloads != 50 || s.Failures != 50 {
		t.Errorf("watcher stats %+v: want 50 reloads and 50 failures", s)
	}
	t.Logf("%d dispatches across %d versions; per dispatcher %v", len(rec.selections()), len(seen), counts)
	if len(seen) < 2 {
		t.Errorf("dispatches saw %d versions; the swaps did not happen under load", len(seen))
	}
}

// BenchmarkReloadLatency measures how long a saved script takes to be in
// service (file written → router swapped), the default debounce included.
func BenchmarkReloadLatency(b *testing.B) {
	rig := newReloadRig(b, nil, 0)
	var took []time.Duration
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		if o := rig.save(b, pickScript(i)); o.Kind != config.Reloaded {
			b.Fatalf("%s: %v", o.Kind, o.Err)
		}
		took = append(took, time.Since(start))
	}
	p50, p99 := percentiles(took)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
}

func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(int(q*float64(len(s))), len(s)-1)] }
	return at(0.5), at(0.99)
}
