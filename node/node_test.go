package node_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/node"
	"github.com/aion-dispatch/dispatch/router"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const leastLoaded = `{lang: lua, source: "function route(r, c) return dispatch.least_loaded(c) end"}`

// parse loads a config from text; script files come from scripts.
func parse(t *testing.T, yaml string, scripts map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("conf/dispatch.yaml", []byte(yaml), config.Options{ReadFile: func(name string) ([]byte, error) {
		s, ok := scripts[name]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return []byte(s), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// recorder keeps every operation.
type recorder struct {
	mu  sync.Mutex
	ops []engine.Operation
}

func (r *recorder) ReplayOutcome(context.Context, engine.ChannelName, engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	return engine.RecordedOutcome{}, false, nil
}

func (r *recorder) Record(_ context.Context, op engine.Operation) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
	return nil
}

func (r *recorder) selections() []engine.Operation {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []engine.Operation
	for _, op := range r.ops {
		if op.Kind == engine.OpWorkerSelected {
			out = append(out, op)
		}
	}
	return out
}

func start(t *testing.T, cfg *config.Config, rec engine.Recorder) *node.Node {
	t.Helper()
	n, err := node.New(cfg, node.Options{Recorder: rec, Seed: 1, IDs: &engine.SequenceIDs{Prefix: "c"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return n
}

func request(queue, wf string) engine.ActivityRequest {
	return engine.ActivityRequest{WorkflowID: wf, ActivityType: "send", TaskQueue: queue, Input: engine.Payload{ContentType: "text/plain", Data: []byte(wf)}}
}

// eventually polls cond until it holds; the deadline only guards a hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func worker(s node.Stats, id string) node.WorkerStats {
	for _, w := range s.Workers {
		if w.Worker == id {
			return w
		}
	}
	return node.WorkerStats{}
}

func TestBehaviour(t *testing.T) {
	cfg := parse(t, `version: 1
channels:
  - namespace: prod
    task_queue: echo
    routing: `+leastLoaded+`
    workers: [{id: e1}]
  - namespace: prod
    task_queue: fail
    routing: `+leastLoaded+`
    workers: [{id: f1, behavior: {fail_rate: 1}}]
  - namespace: prod
    task_queue: exit
    routing: {lang: lua, source: "function route(r, c) return c[1].id end"}
    workers:
      - {id: x1, behavior: {exit_rate: 1}}
      - {id: x2}
`, nil)
	rec := &recorder{}
	n := start(t, cfg, rec)
	ctx := context.Background()

	res, err := n.Dispatch(ctx, "prod", request("echo", "wf-1"))
	if err != nil || res.Status != engine.StatusCompleted || string(res.Output.Data) != "wf-1" {
		t.Fatalf("echo: %+v, %v; want the input back", res, err)
	}
	res, err = n.Dispatch(ctx, "prod", request("fail", "wf-2"))
	if !errors.Is(err, engine.ErrActivityFailed) || res.Status != engine.StatusFailed || !strings.Contains(res.Error, "simulated failure") {
		t.Fatalf("fail: %+v, %v; want a simulated failure", res, err)
	}
	// x1 takes it first, exits, and x2 gets it on the re-route.
	res, err = n.Dispatch(ctx, "prod", request("exit", "wf-3"))
	if err != nil || res.Status != engine.StatusCompleted {
		t.Fatalf("exit: %+v, %v; want completed after the re-route", res, err)
	}
	sels := rec.selections()
	if len(sels) != 4 || sels[2].WorkerID != "x1" || sels[3].WorkerID != "x2" || sels[3].Attempt != 2 ||
		len(sels[3].Excluded) != 1 || sels[3].Excluded[0] != "x1" {
		t.Fatalf("selections %+v: want x1 then x2 on attempt 2 with x1 excluded", sels)
	}
	// x1 stays gone: no restart_after.
	_, err = n.Dispatch(ctx, "prod", request("exit", "wf-4"))
	if err != nil {
		t.Fatal(err)
	}

	s := n.Stats()
	if s.Counters != (node.Counters{Dispatched: 4, Completed: 3, Failed: 1, Rerouted: 1}) {
		t.Errorf("counters %+v", s.Counters)
	}
	if w := worker(s, "x1"); w.Selected != 1 || w.Lost != 1 || w.Rerouted != 1 || w.Exits != 1 || w.Completed != 0 {
		t.Errorf("x1: %+v; want selected once, lost it to a re-route, exited once", w)
	}
	if w := worker(s, "x2"); w.Selected != 2 || w.Completed != 2 {
		t.Errorf("x2: %+v; want two completed", w)
	}
	if len(s.Reasons) != 1 || s.Reasons[0].Count != 1 || !strings.Contains(s.Reasons[0].Reason, "simulated failure") {
		t.Errorf("reasons %+v", s.Reasons)
	}
	if len(s.Channels) != 3 || s.Channels[1].Channel.TaskQueue() != "exit" || s.Channels[1].Reroutes != 1 || s.Channels[1].Exits != 1 {
		t.Errorf("channels %+v", s.Channels)
	}
	if len(s.Routers) != 3 || s.Routers[1].Decisions != 3 || s.Routers[1].Version.Lang != "lua" {
		t.Errorf("routers %+v", s.Routers)
	}
}

func TestRestartAfter(t *testing.T) {
	cfg := parse(t, `version: 1
channels:
  - namespace: prod
    task_queue: q
    routing: `+leastLoaded+`
    when_full: fail # once w1 failed an activity, no worker is left for it: fail rather than wait
    workers: [{id: w1, behavior: {exit_rate: 1, restart_after: 1ms}}]
`, nil)
	n := start(t, cfg, nil)
	_, err := n.Dispatch(context.Background(), "prod", request("q", "wf-1"))
	if !errors.Is(err, engine.ErrNoWorkers) {
		t.Fatalf("the only worker exited: %v, want NoWorkersAvailable", err)
	}
	eventually(t, "w1 restarted", func() bool { return worker(n.Stats(), "w1").Restarts >= 1 })
	if w := worker(n.Stats(), "w1"); w.Exits < 1 || w.Lost != 1 {
		t.Errorf("w1: %+v", w)
	}
	// Back in the pool: it is chosen again (and exits again).
	_, err = n.Dispatch(context.Background(), "prod", request("q", "wf-2"))
	if !errors.Is(err, engine.ErrNoWorkers) {
		t.Fatalf("second dispatch: %v", err)
	}
	if w := worker(n.Stats(), "w1"); w.Selected != 2 {
		t.Errorf("w1 selected %d times, want 2: the restarted worker rejoined", w.Selected)
	}
}

func TestApply(t *testing.T) {
	scripts := map[string]string{
		"conf/one.lua": `function route(r, c) return "w1" end`,
		"conf/two.lua": `function route(r, c) return "w2" end`,
	}
	base := `version: 1
channels:
  - namespace: prod
    task_queue: keep
    routing: {lua: %s}
    workers: [{id: w1}, {id: w2}]
`
	gone := `  - namespace: prod
    task_queue: gone
    routing: ` + leastLoaded + `
    workers: [{id: g1, behavior: {latency: 300ms}}]
`
	cfg1 := parse(t, strings.Replace(base, "%s", "one.lua", 1)+gone, scripts)
	rec := &recorder{}
	n := start(t, cfg1, rec)
	ctx := context.Background()
	if _, err := n.Dispatch(ctx, "prod", request("keep", "wf-1")); err != nil {
		t.Fatal(err)
	}

	// An activity in flight on the channel about to go.
	inFlight := make(chan error, 1)
	go func() {
		res, err := n.Dispatch(ctx, "prod", request("gone", "wf-2"))
		if err == nil && res.Status != engine.StatusCompleted {
			err = errors.New("not completed: " + res.Error)
		}
		inFlight <- err
	}()
	eventually(t, "g1 busy", func() bool { return worker(n.Stats(), "g1").Selected == 1 })

	// Swap the script, drop "gone", add "new" and a worker.
	cfg2 := parse(t, strings.Replace(base, "%s", "two.lua", 1)+`  - namespace: prod
    task_queue: new
    routing: `+leastLoaded+`
    workers: [{id: n1}]
`, scripts)
	cfg2.Channels[0].Workers = append(cfg2.Channels[0].Workers, config.Worker{ID: "w3", MaxInFlight: 1})
	if err := n.Apply(cfg2); err != nil {
		t.Fatal(err)
	}
	if err := <-inFlight; err != nil {
		t.Errorf("the activity in flight on a removed channel: %v; want it finished", err)
	}
	if _, err := n.Dispatch(ctx, "prod", request("gone", "wf-3")); !errors.Is(err, engine.ErrUnknownChannel) {
		t.Errorf("dispatch to a removed channel: %v, want ErrUnknownChannel", err)
	}
	if res, err := n.Dispatch(ctx, "prod", request("new", "wf-4")); err != nil || res.Status != engine.StatusCompleted {
		t.Errorf("dispatch to an added channel: %+v, %v", res, err)
	}
	if _, err := n.Dispatch(ctx, "prod", request("keep", "wf-5")); err != nil {
		t.Fatal(err)
	}
	sels := rec.selections()
	first, last := sels[0], sels[len(sels)-1]
	if first.WorkerID != "w1" || last.WorkerID != "w2" || first.Router.Hash == last.Router.Hash ||
		!strings.HasSuffix(last.Router.Source, "two.lua") {
		t.Errorf("before %s by %+v, after %s by %+v: want the swapped script to decide", first.WorkerID, first.Router, last.WorkerID, last.Router)
	}
	if len(last.Candidates) != 3 || last.Candidates[2].ID != "w3" {
		t.Errorf("candidates after the change %+v, want w1, w2, w3", last.Candidates)
	}
	if got := n.Config(); got != cfg2 {
		t.Error("Config() is not the applied config")
	}

	// Removing a worker from the config takes it out of the pool.
	cfg3 := parse(t, strings.Replace(base, "%s", "two.lua", 1), scripts)
	cfg3.Channels[0].Workers = cfg3.Channels[0].Workers[:1]
	if err := n.Apply(cfg3); err != nil {
		t.Fatal(err)
	}
	_, err := n.Dispatch(ctx, "prod", request("keep", "wf-6"))
	if !errors.Is(err, engine.ErrRouting) {
		t.Errorf("script names w2, which left: %v, want a routing error", err)
	}
}

// Starting a node costs the same per channel however many channels there
// are: each channel is added once, not copied in again with every channel
// after it (which made 10,000 channels take 18 s and 15 GB). Measured in
// bytes allocated, which do not depend on the machine's speed or load.
func TestStartIsLinearInChannels(t *testing.T) {
	perChannel := func(n int) uint64 {
		cfg := manyChannelsConfig(t, n)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		nd, err := node.New(cfg, node.Options{Logger: slog.New(slog.DiscardHandler)})
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if err := nd.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		return (after.TotalAlloc - before.TotalAlloc) / uint64(n)
	}
	perChannel(10) // what is allocated once, on first use
	small, large := perChannel(250), perChannel(2000)
	t.Logf("bytes a channel: %d at 250, %d at 2000", small, large)
	if float64(large) > 1.5*float64(small) {
		t.Errorf("starting 2,000 channels allocated %d bytes a channel, 250 channels %d: the cost per channel grows with the channels", large, small)
	}
}

// failingRecorder refuses every operation from the n-th on, as a journal on
// a full disk does.
type failingRecorder struct {
	mu   sync.Mutex
	n, i int
}

func (r *failingRecorder) ReplayOutcome(context.Context, engine.ChannelName, engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	return engine.RecordedOutcome{}, false, nil
}

func (r *failingRecorder) Record(context.Context, engine.Operation) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.i++
	if r.i >= r.n {
		return errors.New("journal: write j.jsonl: no space left on device\nand a second line")
	}
	return nil
}

// TestStatsAgreeWhenTheJournalFails: every dispatch is counted once as
// completed or not, whichever step the journal refused, and a reason is one
// line.
func TestStatsAgreeWhenTheJournalFails(t *testing.T) {
	cfg := parse(t, `version: 1
channels:
  - namespace: prod
    task_queue: email
    routing: `+leastLoaded+`
    workers: [{id: w1, max_in_flight: 4}]
`, nil)
	n, err := node.New(cfg, node.Options{Recorder: &failingRecorder{n: 10}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	const total = 20
	for i := range total {
		n.Dispatch(context.Background(), "prod", request("email", fmt.Sprintf("wf-%d", i)))
	}
	s := n.Stats()
	c := s.Counters
	if c.Dispatched != total || c.Completed+c.Failed != total {
		t.Errorf("counters %+v: want %d dispatched, each completed or not", c, total)
	}
	ch := s.Channels[0]
	if ch.Activities != total || ch.Completed+ch.Failed+ch.Other != total {
		t.Errorf("channel %+v: want %d activities, each counted once", ch, total)
	}
	for _, r := range s.Reasons {
		if strings.Contains(r.Reason, "\n") {
			t.Errorf("a reason of two lines: %q", r.Reason)
		}
	}
}

// TestBacklogPolicyFollowsApply: the policy the dispatcher asks for is the
// config's in service: a channel's own, its defaults', the engine's for a
// channel the config does not have; a reload that changes it is logged,
// one that does not is not.
func TestBacklogPolicyFollowsApply(t *testing.T) {
	channel := func(queue, keys string) string {
		return "  - namespace: prod\n    task_queue: " + queue + "\n    routing: " + leastLoaded + "\n    workers: [{id: w1}]\n" + keys
	}
	email, _ := engine.DispatchChannel("prod", "email")
	sms, _ := engine.DispatchChannel("prod", "sms")
	fax, _ := engine.DispatchChannel("prod", "fax")
	steps := []struct {
		yaml    string
		want    map[engine.ChannelName]engine.BacklogPolicy
		changed []string // the channels whose change is logged
	}{
		{"version: 1\ndefaults: {max_backlog: 50}\nchannels:\n" + channel("email", "    when_full: fail\n") + channel("sms", ""),
			map[engine.ChannelName]engine.BacklogPolicy{
				email: {MaxBacklog: 50, FailWhenFull: true}, sms: {MaxBacklog: 50}, fax: {}}, nil},
		{"version: 1\ndefaults: {max_backlog: 50}\nchannels:\n" + channel("email", "    when_full: fail\n") + channel("sms", ""),
			map[engine.ChannelName]engine.BacklogPolicy{
				email: {MaxBacklog: 50, FailWhenFull: true}, sms: {MaxBacklog: 50}, fax: {}}, nil},
		{"version: 1\nchannels:\n" + channel("email", "    max_backlog: 5\n") + channel("fax", "    schedule_to_start: 2s\n"),
			map[engine.ChannelName]engine.BacklogPolicy{
				email: {MaxBacklog: 5}, sms: {}, fax: {MaxBacklog: engine.DefaultMaxBacklog, ScheduleToStart: 2 * time.Second}},
			[]string{"channel=prod/email max_backlog=5 when_full=wait schedule_to_start=none"}},
		{"version: 1\ndefaults: {schedule_to_start: 1m}\nchannels:\n" + channel("email", "    max_backlog: 5\n") + channel("fax", "    schedule_to_start: 2s\n"),
			map[engine.ChannelName]engine.BacklogPolicy{
				email: {MaxBacklog: 5, ScheduleToStart: time.Minute}, sms: {}, fax: {MaxBacklog: engine.DefaultMaxBacklog, ScheduleToStart: 2 * time.Second}},
			[]string{"channel=prod/email max_backlog=5 when_full=wait schedule_to_start=1m0s"}},
	}
	var logs syncBuffer
	var n *node.Node
	for i, st := range steps {
		next := parse(t, st.yaml, nil)
		before := logs.String()
		if n == nil {
			var err error
			n, err = node.New(next, node.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close(context.Background())
		} else if err := n.Apply(next); err != nil {
			t.Fatal(err)
		}
		for ch, want := range st.want {
			if got := n.BacklogPolicy(ch); got != want {
				t.Errorf("step %d: %s: %+v, want %+v", i+1, ch.Short(), got, want)
			}
		}
		var changed []string
		for _, line := range strings.Split(strings.TrimPrefix(logs.String(), before), "\n") {
			if _, after, ok := strings.Cut(line, `msg="backlog policy changed" `); ok {
				changed = append(changed, after)
			}
		}
		if strings.Join(changed, "\n") != strings.Join(st.changed, "\n") {
			t.Errorf("step %d: logged changes %q, want %q", i+1, changed, st.changed)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A dispatch that fails in the script keeps the script's error as data
// under the dispatch error: its line and the version that failed.
func TestDispatchKeepsScriptErrors(t *testing.T) {
	scripts := map[string]string{
		"conf/nil.lua":  "function route(r, c)\n  local x = nil\n  return x.id\nend",
		"conf/gone.lua": `function route(r, c) return "w9" end`,
	}
	cfg := parse(t, `version: 1
channels:
  - namespace: prod
    task_queue: nil
    routing: {lua: nil.lua}
    workers: [{id: w1}]
  - namespace: prod
    task_queue: gone
    routing: {lua: gone.lua}
    workers: [{id: w1}]
`, scripts)
	n := start(t, cfg, &recorder{})
	version := func(queue string) engine.RouterVersion {
		for _, ch := range n.Config().Channels {
			if ch.Name.Short() == "prod/"+queue {
				return ch.Router(cfg.File).Version()
			}
		}
		t.Fatalf("no channel prod/%s", queue)
		return engine.RouterVersion{}
	}

	_, err := n.Dispatch(context.Background(), "prod", request("nil", "wf-1"))
	var se *router.ScriptError
	if !errors.Is(err, engine.ErrRouting) || !errors.As(err, &se) {
		t.Fatalf("err = %v, want a routing error with a *router.ScriptError", err)
	}
	if se.Line != 3 || se.File != "conf/nil.lua" || se.Version != version("nil") || se.Version.Hash == "" {
		t.Errorf("script error at %s:%d, version %+v; want conf/nil.lua:3, version %+v", se.File, se.Line, se.Version, version("nil"))
	}

	_, err = n.Dispatch(context.Background(), "prod", request("gone", "wf-2"))
	var ce *router.CallError
	if !errors.Is(err, router.ErrBadDecision) || !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a bad decision with a *router.CallError", err)
	}
	if ce.Version != version("gone") || ce.Returned != `"w9", which is not a candidate; candidates: [w1]` {
		t.Errorf("call error %+v, want version %+v returning w9", ce, version("gone"))
	}

	// Both versions only ever failed: the figures list them, with their
	// errors and no decision.
	for _, queue := range []string{"nil", "gone"} {
		var got *RouterStatsView
		for _, r := range n.Stats().Routers {
			if r.Version == version(queue) {
				got = &RouterStatsView{r.Decisions, r.Errors}
			}
		}
		if got == nil || *got != (RouterStatsView{0, 1}) {
			t.Errorf("prod/%s: router figures %+v, want 0 decisions and 1 error", queue, got)
		}
	}
}

// RouterStatsView is the part of a node.RouterStats a test compares.
type RouterStatsView struct{ Decisions, Errors int }
