package journal_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/router"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock returns a deterministic clock: 1 ms later on every call.
func clock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

func channel(t testing.TB) engine.ChannelName {
	ch, err := engine.DispatchChannel("prod", "email")
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func sampleOps(t testing.TB) []engine.Operation {
	ch := channel(t)
	req := engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "send-email", TaskQueue: "email",
		Input: engine.Payload{ContentType: "application/json", Data: []byte(`{"to":"a"}`)}}
	base := engine.Operation{WorkflowID: "wf-1", ConversationID: "c1", Channel: ch}
	with := func(f func(*engine.Operation)) engine.Operation { op := base; f(&op); return op }
	return []engine.Operation{
		with(func(op *engine.Operation) {
			op.Kind, op.State, op.Request = engine.OpConversationOpened, engine.StateScheduled, req
		}),
		with(func(op *engine.Operation) {
			op.Kind, op.State, op.WorkerID, op.Attempt = engine.OpWorkerSelected, engine.StateStarted, "w1", 1
			op.Candidates = []engine.ConsumerStateView{{ID: "w1", MaxInFlight: 1}}
			op.Router = engine.RouterVersion{Lang: "lua", Hash: "sha256:ab", Source: "x.lua"}
		}),
		with(func(op *engine.Operation) { op.Kind, op.WorkerID, op.Attempt = engine.OpMessageSent, "w1", 1 }),
		with(func(op *engine.Operation) {
			op.Kind, op.State, op.WorkerID, op.Attempt = engine.OpMessageReceived, engine.StateCompleted, "w1", 1
			op.Result = engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte("ok")})
		}),
		with(func(op *engine.Operation) {
			op.Kind, op.State, op.WorkerID, op.Attempt = engine.OpConversationClosed, engine.StateCompleted, "w1", 1
			op.Result = engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte("ok")})
		}),
	}
}

func TestRoundTrip(t *testing.T) {
	for _, mode := range []journal.Fsync{journal.FsyncBatch, journal.FsyncInterval, journal.FsyncNever} {
		t.Run(mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j.jsonl")
			w, recovered, err := journal.Open(path, journal.Options{Fsync: mode, Now: clock()})
			if err != nil || recovered != "" {
				t.Fatalf("open: %v %q", err, recovered)
			}
			ops := sampleOps(t)
			for _, op := range ops {
				if err := w.Record(context.Background(), op); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := readBack(t, path)
			if len(got) != len(ops) {
				t.Fatalf("read %d ops, wrote %d", len(got), len(ops))
			}
			for i := range ops {
				want := ops[i]
				want.Seq = uint64(i + 1)
				want.Time = time.Date(2026, 11, 25, 20, 0, 0, (i+1)*int(time.Millisecond), time.UTC)
				if !reflect.DeepEqual(got[i], want) {
					t.Errorf("op %d:\n got %+v\nwant %+v", i, got[i], want)
				}
			}
		})
	}
}

func TestAppendContinuesSeqAndCutsATornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	w, _, err := journal.Open(path, journal.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ops := sampleOps(t)
	for _, op := range ops[:2] {
		if err := w.Record(context.Background(), op); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of the third line.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":3,"time":"2026-11-25T20:00:00Z","workflow_id":"wf-1","kin`)
	f.Close()

	raw, _ := os.ReadFile(path)
	_, truncated, err := journal.ReadAll(bytes.NewReader(raw))
	if err != nil || truncated != 3 {
		t.Fatalf("reader: err %v, truncated line %d; want the torn line 3 reported", err, truncated)
	}

	w, recovered, err := journal.Open(path, journal.Options{})
	if err != nil || !strings.Contains(recovered, "truncated last line") {
		t.Fatalf("reopen: %v, %q", err, recovered)
	}
	if err := w.Record(context.Background(), ops[2]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	raw, _ = os.ReadFile(path)
	got, truncated, err := journal.ReadAll(bytes.NewReader(raw))
	if err != nil || truncated != 0 || len(got) != 3 || got[2].Seq != 3 || got[2].Kind != engine.OpMessageSent {
		t.Fatalf("after recovery: %d ops, truncated %d, err %v, last %+v", len(got), truncated, err, got[len(got)-1])
	}
}

func TestReaderErrors(t *testing.T) {
	good := `{"seq":1,"kind":"message_sent","conversation_id":"c1"}` + "\n"
	for _, tc := range []struct {
		name, text string
		want       string
	}{
		{"corrupt mid-file", good + "{\"seq\":2,\"kind\":\n" + good, "line 2:"},
		{"unknown kind", good + `{"seq":2,"kind":"teleported"}` + "\n", `line 2: operation: unknown operation kind "teleported"`},
		{"empty line", good + "\n" + good, "line 2: empty line"},
		{"garbage", "hello\n", "line 1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := journal.ReadAll(strings.NewReader(tc.text))
			var le *journal.LineError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want a LineError containing %q", err, tc.want)
			}
		})
	}
	// A last line without a newline that parses is a complete line.
	ops, truncated, err := journal.ReadAll(strings.NewReader(good + strings.TrimSuffix(good, "\n")))
	if err != nil || truncated != 0 || len(ops) != 2 {
		t.Errorf("unterminated but whole last line: %d ops, truncated %d, %v", len(ops), truncated, err)
	}
}

func TestConcurrentWriters(t *testing.T) {
	for _, mode := range []journal.Fsync{journal.FsyncBatch, journal.FsyncInterval, journal.FsyncNever} {
		t.Run(mode.String(), func(t *testing.T) {
			var buf syncBuffer
			w := journal.NewWriter(&buf, journal.Options{Fsync: mode, Interval: time.Millisecond})
			const writers, each = 8, 500
			var wg sync.WaitGroup
			for g := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						op := engine.Operation{Kind: engine.OpMessageSent, ConversationID: fmt.Sprintf("c%d-%d", g, i)}
						if err := w.Record(context.Background(), op); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			ops, truncated, err := journal.ReadAll(bytes.NewReader(buf.Bytes()))
			if err != nil || truncated != 0 || len(ops) != writers*each {
				t.Fatalf("%d ops, truncated %d, err %v", len(ops), truncated, err)
			}
			seen := map[string]bool{}
			for i, op := range ops {
				if op.Seq != uint64(i+1) {
					t.Fatalf("line %d has seq %d", i+1, op.Seq)
				}
				seen[op.ConversationID] = true
			}
			if len(seen) != writers*each {
				t.Errorf("%d distinct operations, want %d", len(seen), writers*each)
			}
		})
	}
}

// syncBuffer is a buffer that counts syncs, for writers in tests.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	syncs int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Sync() error {
	b.mu.Lock()
	b.syncs++
	b.mu.Unlock()
	return nil
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("device full") }

func TestWriteErrorsAreNotLost(t *testing.T) {
	w := journal.NewWriter(failWriter{}, journal.Options{})
	ops := sampleOps(t)
	op := ops[0]
	_ = w.Record(context.Background(), op) // buffered: the write comes with the close
	if err := w.Err(); err != nil {
		t.Fatalf("Err before any write: %v", err)
	}
	closing := ops[len(ops)-1]
	if err := w.Record(context.Background(), closing); err == nil || !strings.Contains(err.Error(), "device full") {
		t.Fatalf("recording the close: %v", err)
	}
	if err := w.Err(); err == nil || !strings.Contains(err.Error(), "device full") {
		t.Fatalf("Err after the failed write: %v", err)
	}
	if err := w.Record(context.Background(), op); err == nil {
		t.Error("a record after a failed write succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("Close hid the write error")
	}
	// Under FsyncNever the error reaches a later Record or Close.
	w = journal.NewWriter(failWriter{}, journal.Options{Fsync: journal.FsyncNever})
	_ = w.Record(context.Background(), op)
	if err := w.Close(); err == nil {
		t.Error("Close under FsyncNever hid the write error")
	}
}

// recordDispatches runs dispatches over in-process workers and returns the
// journal they wrote.
func recordDispatches(t *testing.T, handlers map[string]local.Handler, requests []engine.ActivityRequest) []byte {
	t.Helper()
	ch := channel(t)
	pool := local.NewPool()
	pool.AddChannel(ch)
	defer pool.Close(context.Background())
	for _, id := range []string{"w1", "w2"} {
		if h, ok := handlers[id]; ok {
			if _, err := pool.Start(ch, local.WorkerConfig{ID: id, Handler: h}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var buf syncBuffer
	w := journal.NewWriter(&buf, journal.Options{Now: clock()})
	d, err := engine.NewDispatcher(engine.Options{Pool: pool, Router: router.NewNative("least-loaded", router.LeastLoaded),
		Conversations: pool, Recorder: journal.Recorder{Writer: w}, IDs: &engine.SequenceIDs{Prefix: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range requests {
		d.Dispatch(context.Background(), "prod", req)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// nothingLive fails on any call: a replay must not reach the world.
type nothingLive struct{ t *testing.T }

func (n nothingLive) Workers(context.Context, engine.ChannelName, engine.ActivityRequest) ([]engine.Worker, error) {
	n.t.Error("pool called during replay")
	return nil, nil
}
func (n nothingLive) Select(context.Context, engine.Selection) (engine.Decision, error) {
	n.t.Error("router called during replay")
	return engine.Decision{}, nil
}
func (n nothingLive) Open(context.Context, string, engine.ChannelName, string) (engine.Conversation, error) {
	n.t.Error("conversation opened during replay")
	return nil, errors.New("live")
}

func request(wf, input string) engine.ActivityRequest {
	return engine.ActivityRequest{WorkflowID: wf, ActivityType: "send-email", TaskQueue: "email",
		Input: engine.Payload{ContentType: "text/plain", Data: []byte(input)}}
}

func TestReplay(t *testing.T) {
	answers := map[string]local.Handler{
		"w1": func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
			if string(req.Input.Data) == "bad" {
				return engine.Failed("550 mailbox unavailable")
			}
			return engine.Completed(engine.Payload{ContentType: "text/plain", Data: append([]byte("sent "), req.Input.Data...)})
		},
	}
	reqs := []engine.ActivityRequest{request("wf-1", "a"), request("wf-1", "bad"), request("wf-2", "b")}
	raw := recordDispatches(t, answers, reqs)
	// And a workflow that found no worker at all.
	raw = append(raw, recordDispatches(t, nil, []engine.ActivityRequest{request("wf-3", "c")})...)

	ops, _, err := journal.ReadAll(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	replay := journal.NewReplay(ops, nil)
	live := nothingLive{t}
	d, err := engine.NewDispatcher(engine.Options{Pool: live, Router: live, Conversations: live, Recorder: journal.Recorder{Replay: replay}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := d.Dispatch(ctx, "prod", request("wf-1", "a"))
	if err != nil || string(res.Output.Data) != "sent a" {
		t.Errorf("replay of a success: %+v, %v", res, err)
	}
	res, err = d.Dispatch(ctx, "prod", request("wf-1", "bad"))
	if !errors.Is(err, engine.ErrActivityFailed) || res.Error != "550 mailbox unavailable" {
		t.Errorf("replay of a failure: %+v, %v", res, err)
	}
	var de *engine.DispatchError
	if !errors.As(err, &de) || de.WorkerID != "w1" {
		t.Errorf("replayed failure %#v should name worker w1", err)
	}
	if _, err := d.Dispatch(ctx, "prod", request("wf-3", "c")); !errors.Is(err, engine.ErrNoWorkers) {
		t.Errorf("replay of no workers: %v", err)
	}
	// wf-2's history differs from what is asked now.
	_, err = d.Dispatch(ctx, "prod", request("wf-2", "changed"))
	var nd *journal.NonDeterminismError
	if !errors.As(err, &nd) || !errors.Is(err, journal.ErrNonDeterminism) || nd.Position != 1 || nd.WorkflowID != "wf-2" {
		t.Fatalf("non-determinism: %v", err)
	}
	for _, want := range []string{"wf-2", "dispatch #1", "recorded send-email(b)", "requested send-email(changed)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestReplayGoesLivePastTheHistory(t *testing.T) {
	raw := recordDispatches(t, map[string]local.Handler{"w1": func(context.Context, engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(engine.Payload{Data: []byte("recorded")})
	}}, []engine.ActivityRequest{request("wf-1", "a")})
	ops, _, _ := journal.ReadAll(bytes.NewReader(raw))
	replay := journal.NewReplay(ops, nil)
	ch := channel(t)
	pool := local.NewPool()
	defer pool.Close(context.Background())
	pool.Start(ch, local.WorkerConfig{ID: "w9", Handler: func(context.Context, engine.ActivityRequest) engine.ActivityResult {
		return engine.Completed(engine.Payload{Data: []byte("live")})
	}})
	d, _ := engine.NewDispatcher(engine.Options{Pool: pool, Router: router.NewNative("ll", router.LeastLoaded), Conversations: pool,
		Recorder: journal.Recorder{Replay: replay}})
	for i, want := range []string{"recorded", "live"} {
		res, err := d.Dispatch(context.Background(), "prod", request("wf-1", "a"))
		if err != nil || string(res.Output.Data) != want {
			t.Errorf("dispatch %d: %q, %v; want %q", i+1, res.Output.Data, err, want)
		}
	}
}

func TestCheck(t *testing.T) {
	raw := recordDispatches(t, map[string]local.Handler{
		"w1": func(ctx context.Context, _ engine.ActivityRequest) engine.ActivityResult { panic("crash") },
		"w2": func(context.Context, engine.ActivityRequest) engine.ActivityResult {
			return engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte("sent")})
		},
	}, []engine.ActivityRequest{request("wf-1", "a"), request("wf-2", "b")})
	ops, _, err := journal.ReadAll(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if p := check(ops); len(p) != 0 {
		t.Fatalf("a recorded journal has problems: %v", p)
	}

	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	// The journal: c1 is lines 1-8 (w1 exits on attempt 1, w2 answers
	// attempt 2), c2 lines 9-13 (w2 answers attempt 1).
	if len(lines) != 13 || !strings.Contains(lines[3], "worker_exited") || !strings.Contains(lines[6], "message_received") {
		t.Fatalf("the recorded journal is not the one the cases edit:\n%s", raw)
	}
	// edit replaces old with new in the n-th line (1-based).
	edit := func(l []string, n int, old, new string) []string {
		if !strings.Contains(l[n-1], old) {
			t.Fatalf("line %d lacks %s: %s", n, old, l[n-1])
		}
		l[n-1] = strings.Replace(l[n-1], old, new, 1)
		return l
	}
	for _, tc := range []struct {
		name string
		edit func([]string) []string
		want string
	}{
		{"seq goes back", func(l []string) []string { l[1], l[2] = l[2], l[1]; return l }, "does not increase"},
		{"closed twice", func(l []string) []string { return append(l, strings.Replace(l[len(l)-1], `"seq":`, `"seq":9`, 1)) }, "after conversation_closed"},
		{"never closed", func(l []string) []string { return l[:len(l)-1] }, "never closed"},
		{"step before open", func(l []string) []string { return l[1:] }, "before conversation_opened"},
		{"a line lost in the middle", func(l []string) []string {
			i := slices.IndexFunc(l, func(s string) bool { return strings.Contains(s, "conversation_closed") })
			if i == len(l)-1 {
				t.Fatal("the first conversation_closed is the last line")
			}
			return slices.Delete(l, i, i+1) // an unclosed conversation, but not one a crash left
		}, "1 line is missing"},
		{"a reply from another worker", func(l []string) []string {
			return edit(l, 7, `"worker_id":"w2"`, `"worker_id":"w1"`)
		}, "line 7: conversation c1: message_received of worker w1, but attempt 2 went to worker w2"},
		{"a message sent to another worker", func(l []string) []string {
			return edit(l, 11, `"worker_id":"w2"`, `"worker_id":"w1"`)
		}, "line 11: conversation c2: message_sent of worker w1, but attempt 1 went to worker w2"},
		{"an exit of another worker", func(l []string) []string {
			return edit(l, 4, `"worker_id":"w1"`, `"worker_id":"w2"`)
		}, "line 4: conversation c1: worker_exited of worker w2, but attempt 1 went to worker w1"},
		{"a close naming another worker", func(l []string) []string {
			return edit(l, 13, `"worker_id":"w2"`, `"worker_id":"w1"`)
		}, "line 13: conversation c2: conversation_closed of worker w1, but attempt 1 went to worker w2"},
		{"a selection of a worker that is not a candidate", func(l []string) []string {
			return edit(l, 10, `"worker_id":"w2"`, `"worker_id":"w9"`)
		}, "line 10: conversation c2: worker_selected chose w9, which is not a candidate (candidates: w2)"},
		{"a selection of an excluded worker", func(l []string) []string {
			l = edit(l, 5, `"candidates":[{"id":"w2"`, `"candidates":[{"id":"w1","in_flight":0,"max_in_flight":1,"buffer_depth":0},{"id":"w2"`)
			return edit(l, 5, `"worker_id":"w2"`, `"worker_id":"w1"`)
		}, "line 5: conversation c1: worker_selected chose w1, which is excluded"},
		{"a selection of a worker that exited, not listed as excluded", func(l []string) []string {
			l = edit(l, 5, `"candidates":[{"id":"w2"`, `"candidates":[{"id":"w1","in_flight":0,"max_in_flight":1,"buffer_depth":0},{"id":"w2"`)
			l = edit(l, 5, `,"excluded":["w1"]`, ``)
			return edit(l, 5, `"worker_id":"w2"`, `"worker_id":"w1"`)
		}, "line 5: conversation c1: worker_selected chose w1, which exited at line 4"},
		{"a close with another result", func(l []string) []string {
			return edit(l, 13, `"data":"sent"`, `"data":"lost"`)
		}, "line 13: conversation c2: conversation_closed with result completed (text/plain \"lost\"), but the message_received at line 12 has completed (text/plain \"sent\")"},
		{"a close with a failure instead of the answer", func(l []string) []string {
			return edit(l, 8, `"result":{"status":"completed","output":{"content_type":"text/plain","data":"sent"}}`, `"result":{"status":"failed","error":"550"}`)
		}, "line 8: conversation c1: conversation_closed with result failed (550), but the message_received at line 7 has completed (text/plain \"sent\")"},
		{"a close with a result and no answer", func(l []string) []string {
			l = slices.Delete(l, 11, 12) // c2's message_received
			return edit(l, 12, `"seq":13`, `"seq":12`)
		}, "line 12: conversation c2: conversation_closed with result completed (text/plain \"sent\"), but no message_received"},
		{"an attempt that does not follow an exit", func(l []string) []string {
			return edit(l, 13, `"attempt":1`, `"attempt":2`)
		}, "line 13: conversation c2: conversation_closed of attempt 2, but attempt 1 did not end in worker_exited"},
		{"an excluded worker among the candidates", func(l []string) []string {
			return edit(l, 5, `"candidates":[{"id":"w2"`, `"candidates":[{"id":"w1","in_flight":0,"max_in_flight":1,"buffer_depth":0},{"id":"w2"`)
		}, "line 5: conversation c1: worker_selected has candidate w1, which is excluded"},
		{"a candidate twice", func(l []string) []string {
			return edit(l, 10, `"candidates":[{"id":"w2"`, `"candidates":[{"id":"w2","in_flight":0,"max_in_flight":1,"buffer_depth":0},{"id":"w2"`)
		}, "line 10: conversation c2: worker_selected has candidate w2 twice"},
		{"a step on another channel", func(l []string) []string {
			return edit(l, 11, `"channel":"aion.dispatch.prod.email"`, `"channel":"aion.dispatch.prod.render"`)
		}, "line 11: conversation c2: message_sent on prod/render for workflow wf-2, but the conversation opened on prod/email for workflow wf-2 (line 9)"},
		{"a request of another workflow", func(l []string) []string {
			return edit(l, 9, `"request":{"workflow_id":"wf-2"`, `"request":{"workflow_id":"wf-9"`)
		}, "line 9: conversation c2: conversation_opened of workflow wf-2, but its request is of workflow wf-9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edited := tc.edit(append([]string(nil), lines...))
			ops, _, err := journal.ReadAll(strings.NewReader(strings.Join(edited, "\n") + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			problems := check(ops)
			found := false
			for _, p := range problems {
				found = found || (strings.Contains(p.Error(), tc.want) && strings.HasPrefix(p.Error(), "line "))
			}
			if !found {
				t.Errorf("problems = %v, want one saying %q with its line", problems, tc.want)
			}
		})
	}
}

func TestWhatIf(t *testing.T) {
	raw := recordDispatches(t, map[string]local.Handler{
		"w1": func(context.Context, engine.ActivityRequest) engine.ActivityResult {
			return engine.Completed(engine.Payload{})
		},
		"w2": func(context.Context, engine.ActivityRequest) engine.ActivityResult {
			return engine.Completed(engine.Payload{})
		},
	}, []engine.ActivityRequest{request("wf-1", "a"), request("wf-2", "b"), request("wf-3", "c")})
	ops := func() iter.Seq2[int, engine.Operation] { return journal.NewReader(bytes.NewReader(raw)).All() }
	same := router.NewNative("least-loaded", router.LeastLoaded)
	if rep := journal.WhatIf(context.Background(), ops(), channel(t), same, journal.WhatIfOptions{Keep: 5}); rep.Decisions != 3 || rep.Changed != 0 {
		t.Errorf("the same policy: %+v", rep)
	}
	last := router.NewNative("last", func(in engine.Selection) string { return in.Candidates[len(in.Candidates)-1].ID() })
	rep := journal.WhatIf(context.Background(), ops(), channel(t), last, journal.WhatIfOptions{Keep: 2})
	if rep.Decisions != 3 || rep.Changed != 3 || len(rep.Examples) != 2 {
		t.Fatalf("another policy: %+v", rep)
	}
	if ex := rep.Examples[0]; ex.Recorded != "w1" || ex.Proposed != "w2" || ex.WorkflowID != "wf-1" || ex.Line != 2 {
		t.Errorf("first change = %+v", ex)
	}
	other, _ := engine.DispatchChannel("prod", "sms")
	rep = journal.WhatIf(context.Background(), ops(), other, last, journal.WhatIfOptions{Keep: 2})
	if rep.Decisions != 0 || rep.Recorded != 0 {
		t.Errorf("another channel: %+v", rep)
	}
	if got := rep.Channels; len(got) != 1 || got[channel(t)] != 3 {
		t.Errorf("decisions per channel = %v, want 3 on %s", got, channel(t))
	}

	// A router that times out is given up on after MaxTimeouts decisions;
	// the rest are counted.
	slow := failingRouter{err: fmt.Errorf("script: %w", engine.ErrRouterTimeout)}
	rep = journal.WhatIf(context.Background(), ops(), channel(t), slow, journal.WhatIfOptions{Keep: 5, MaxTimeouts: 2})
	if !rep.Stopped || rep.Decisions != 2 || rep.Recorded != 3 || rep.Errors != 2 || rep.Timeouts != 2 || len(rep.Examples) != 2 {
		t.Errorf("a router that times out: %+v", rep)
	}
	// Other errors do not stop it.
	rep = journal.WhatIf(context.Background(), ops(), channel(t), failingRouter{err: errors.New("bug")},
		journal.WhatIfOptions{MaxTimeouts: 2})
	if rep.Stopped || rep.Decisions != 3 || rep.Recorded != 3 || rep.Errors != 3 || rep.Timeouts != 0 {
		t.Errorf("a router that fails: %+v", rep)
	}
	// An id that is not a candidate fails the router, as in the engine.
	rep = journal.WhatIf(context.Background(), ops(), channel(t), ghostRouter{}, journal.WhatIfOptions{Keep: 1})
	if rep.Decisions != 3 || rep.Changed != 3 || rep.Errors != 3 || len(rep.Examples) != 1 {
		t.Fatalf("a router that chooses no candidate: %+v", rep)
	}
	if err := rep.Examples[0].Err; !errors.Is(err, engine.ErrRouting) || !strings.Contains(err.Error(), `chose "ghost", which is not a candidate`) {
		t.Errorf("a router that chooses no candidate: error %v", err)
	}
}

// ghostRouter chooses a worker that is never a candidate.
type ghostRouter struct{}

func (ghostRouter) Select(context.Context, engine.Selection) (engine.Decision, error) {
	return engine.Decision{WorkerID: "ghost"}, nil
}

// failingRouter fails every decision with err.
type failingRouter struct{ err error }

func (r failingRouter) Select(context.Context, engine.Selection) (engine.Decision, error) {
	return engine.Decision{}, r.err
}

func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w := journal.NewWriter(&buf, journal.Options{Now: clock()})
	for _, op := range sampleOps(f) {
		w.Record(context.Background(), op)
	}
	w.Close()
	f.Add(buf.Bytes())
	f.Add(renumber(waitLines())) // waits in a backlog
	f.Add([]byte("{\"seq\":1,\"kind\":\"message_sent\"}\n{\"se"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := journal.NewReader(bytes.NewReader(data))
		c := journal.NewChecker()
		for {
			op, err := r.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				var le *journal.LineError
				if !errors.As(err, &le) || le.Line < 1 {
					t.Fatalf("error without a line: %v", err)
				}
				return
			}
			if op.Kind == 0 {
				t.Fatalf("an operation without a kind at line %d", r.Line())
			}
			_ = c.Add(r.Line(), op)
			_ = c.Unfinished()
		}
	})
}

func TestBatchCloseIsDurable(t *testing.T) {
	var buf syncBuffer
	w := journal.NewWriter(&buf, journal.Options{Interval: time.Hour})
	ops := sampleOps(t)
	for _, op := range ops[:len(ops)-1] {
		if err := w.Record(context.Background(), op); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Record(context.Background(), ops[len(ops)-1]); err != nil {
		t.Fatal(err)
	}
	buf.mu.Lock()
	lines, syncs := bytes.Count(buf.buf.Bytes(), []byte("\n")), buf.syncs
	buf.mu.Unlock()
	if lines != len(ops) || syncs == 0 {
		t.Errorf("after the close returned: %d lines written, %d syncs; want %d lines, synced", lines, syncs, len(ops))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// Records racing with Close either fail or are in the file; none hangs.
func TestCloseRacesRecords(t *testing.T) {
	for _, mode := range []journal.Fsync{journal.FsyncBatch, journal.FsyncInterval, journal.FsyncNever} {
		t.Run(mode.String(), func(t *testing.T) {
			var buf syncBuffer
			w := journal.NewWriter(&buf, journal.Options{Fsync: mode, Interval: time.Millisecond})
			ops := sampleOps(t)
			var (
				wg sync.WaitGroup
				mu sync.Mutex
				ok = map[string]bool{}
			)
			start := make(chan struct{})
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for i := range 200 {
						op := ops[len(ops)-1]
						op.ConversationID = fmt.Sprintf("c%d-%d", g, i)
						if w.Record(context.Background(), op) == nil {
							mu.Lock()
							ok[op.ConversationID] = true
							mu.Unlock()
						}
					}
				}()
			}
			close(start)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			got, truncated, err := journal.ReadAll(bytes.NewReader(buf.Bytes()))
			if err != nil || truncated != 0 {
				t.Fatalf("read: %v, truncated %d", err, truncated)
			}
			inFile := map[string]bool{}
			for i, op := range got {
				if op.Seq != uint64(i+1) {
					t.Fatalf("line %d has seq %d", i+1, op.Seq)
				}
				inFile[op.ConversationID] = true
			}
			for id := range ok {
				if !inFile[id] {
					t.Errorf("%s was recorded without error but is not in the file", id)
				}
			}
		})
	}
}

func TestOpenAfterAWholeLastLineWithoutNewline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.jsonl")
	os.WriteFile(path, []byte(`{"seq":1,"kind":"message_sent","conversation_id":"c1"}`), 0o644)
	w, recovered, err := journal.Open(path, journal.Options{})
	if err != nil || recovered != "" {
		t.Fatalf("open: %v %q", err, recovered)
	}
	if err := w.Record(context.Background(), engine.Operation{Kind: engine.OpMessageSent, ConversationID: "c2"}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	raw, _ := os.ReadFile(path)
	ops, _, err := journal.ReadAll(bytes.NewReader(raw))
	if err != nil || len(ops) != 2 || ops[1].Seq != 2 {
		t.Fatalf("%d ops, %v:\n%s", len(ops), err, raw)
	}
}

func TestReplayedErrorKeepsItsSentinel(t *testing.T) {
	ch := channel(t)
	open := engine.Operation{Kind: engine.OpConversationOpened, ConversationID: "c1", WorkflowID: "wf", Channel: ch,
		State: engine.StateScheduled, Request: request("wf", "x")}
	closed := engine.Operation{Kind: engine.OpConversationClosed, ConversationID: "c1", WorkflowID: "wf", Channel: ch,
		State: engine.StateFailed(false), Result: engine.Failed("upstream said NoWorkersAvailable"),
		Message: "activity failed: upstream said NoWorkersAvailable"}
	out := journal.Outcomes([]engine.Operation{open, closed}, nil)
	if len(out) != 1 || !errors.Is(out[0].Err, engine.ErrActivityFailed) || errors.Is(out[0].Err, engine.ErrNoWorkers) {
		t.Errorf("outcome error %v: want ErrActivityFailed only", out[0].Err)
	}
	closed.Result, closed.State = engine.ActivityResult{}, engine.StateFailed(true)
	closed.Message = "start-to-close timeout after 2s"
	out = journal.Outcomes([]engine.Operation{open, closed}, nil)
	if !errors.Is(out[0].Err, engine.ErrStartToCloseTimeout) {
		t.Errorf("outcome error %v: want the start-to-close timeout", out[0].Err)
	}
	// The backlog's errors (issue 12) keep theirs too.
	for _, tc := range []struct {
		msg      string
		sentinel error
	}{
		{"schedule-to-start timeout after 2s", engine.ErrScheduleToStartTimeout},
		{"backlog full: 100 activities already wait on prod/email (max_backlog 100)", engine.ErrBacklogFull},
	} {
		closed.Message = tc.msg
		out = journal.Outcomes([]engine.Operation{open, closed}, nil)
		if !errors.Is(out[0].Err, tc.sentinel) || errors.Is(out[0].Err, engine.ErrScheduleToCloseTimeout) {
			t.Errorf("outcome error %v: want %v only", out[0].Err, tc.sentinel)
		}
	}
}

func TestVerifyAndSummarize(t *testing.T) {
	raw := recordDispatches(t, map[string]local.Handler{
		"w1": func(_ context.Context, req engine.ActivityRequest) engine.ActivityResult {
			if string(req.Input.Data) == "bad" {
				return engine.Failed("no")
			}
			return engine.Completed(engine.Payload{})
		},
	}, []engine.ActivityRequest{request("wf-1", "a"), request("wf-2", "bad")})
	rep, err := journal.Verify(context.Background(), bytes.NewReader(raw))
	if err != nil || rep.Problems != 0 || rep.Summary.Total.Conversations != 2 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	s := rep.Summary
	email := s.Channels["prod/email"]
	if s.Total.Conversations != 2 || s.Total.Completed != 1 || s.Total.Failed != 1 || email == nil || email.Selected != 2 ||
		s.Workers[journal.WorkerKey{Channel: "prod/email", Worker: "w1"}].Answered != 1 ||
		s.Workers[journal.WorkerKey{Channel: "prod/email", Worker: "w1"}].AnsweredFailed != 1 {
		t.Errorf("summary = %+v, channel %+v", s.Total, email)
	}
}

// TestVerifyRefusesARequestForAnotherQueue: the request's task queue names
// the channel it is dispatched on, so a recorded request whose task queue
// is not its channel's cannot be replayed where it was recorded.
func TestVerifyRefusesARequestForAnotherQueue(t *testing.T) {
	raw := recordDispatches(t, nil, []engine.ActivityRequest{request("wf-1", "a")})
	if !bytes.Contains(raw, []byte(`"task_queue":"email"`)) {
		t.Fatalf("the journal records no task queue:\n%s", raw)
	}
	raw = bytes.ReplaceAll(raw, []byte(`"task_queue":"email"`), []byte(`"task_queue":"sms"`))
	rep, err := journal.Verify(context.Background(), bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problems != 1 || !strings.Contains(rep.First.Msg, `task_queue "sms" is not its channel's "email"`) {
		t.Fatalf("verify: %d problems, first %+v", rep.Problems, rep.First)
	}
}

// TestVerifyRefusesObservedFiguresNoTransportReports: a recorded
// candidate's figures are what its router saw, within what the view
// allows.
func TestVerifyRefusesObservedFiguresNoTransportReports(t *testing.T) {
	raw := recordDispatches(t, map[string]local.Handler{
		"w1": func(context.Context, engine.ActivityRequest) engine.ActivityResult {
			return engine.Completed(engine.Payload{})
		},
	}, []engine.ActivityRequest{request("wf-1", "a")})
	for _, tc := range []struct{ figures, want string }{
		{`"error_rate":1.5`, "error_rate 1.5 is not within 0..1"},
		{`"latency_ewma":-0.1`, "latency_ewma -0.1 is not a finite number of seconds >= 0"},
		{`"latency_peak_ewma":-2`, "latency_peak_ewma -2 is not a finite number"},
		{`"exits":17`, "exits 17 is not within 0..16"},
	} {
		bad := bytes.Replace(raw, []byte(`"buffer_depth":0`), []byte(`"buffer_depth":0,`+tc.figures), 1)
		if bytes.Equal(bad, raw) {
			t.Fatalf("no candidate to change in:\n%s", raw)
		}
		rep, err := journal.Verify(context.Background(), bytes.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Problems != 1 || !strings.Contains(rep.First.Msg, "candidate worker w1: "+tc.want) {
			t.Errorf("%s: %d problems, first %+v; want %q", tc.figures, rep.Problems, rep.First, tc.want)
		}
	}
	good := bytes.Replace(raw, []byte(`"buffer_depth":0`), []byte(`"buffer_depth":0,"latency_ewma":0.02,"latency_peak_ewma":0.05,"error_rate":1,"exits":16`), 1)
	if rep, err := journal.Verify(context.Background(), bytes.NewReader(good)); err != nil || rep.Problems != 0 {
		t.Errorf("figures at their limits: %+v, %v", rep, err)
	}
}

// TestSummaryKeepsWorkersOfChannelsApart: worker ids are unique within a
// channel only, so a summary counts w1 of one channel apart from w1 of
// another.
func TestSummaryKeepsWorkersOfChannelsApart(t *testing.T) {
	a, _ := engine.DispatchChannel("prod", "a")
	b, _ := engine.DispatchChannel("prod", "b")
	ops := []engine.Operation{
		{Kind: engine.OpWorkerSelected, Channel: a, WorkerID: "w1"},
		{Kind: engine.OpWorkerSelected, Channel: b, WorkerID: "w1"},
		{Kind: engine.OpWorkerSelected, Channel: b, WorkerID: "w1"},
	}
	s := journal.Summarize(ops, nil)
	want := []journal.WorkerKey{{Channel: "prod/a", Worker: "w1"}, {Channel: "prod/b", Worker: "w1"}}
	if got := s.WorkerKeys(); !slices.Equal(got, want) {
		t.Fatalf("workers %v, want %v", got, want)
	}
	if s.Workers[want[0]].Selected != 1 || s.Workers[want[1]].Selected != 2 {
		t.Errorf("selections %d and %d, want 1 and 2", s.Workers[want[0]].Selected, s.Workers[want[1]].Selected)
	}
}

// TestOpenAfterLongLines: the tail is found however long the last lines
// are (up to the line limit), whether the last one is whole or torn.
func TestOpenAfterLongLines(t *testing.T) {
	long := func(seq uint64, n int) []byte {
		op := engine.Operation{Seq: seq, Kind: engine.OpMessageSent, ConversationID: "c1", Message: strings.Repeat("m", n)}
		line, err := journal.AppendLine(nil, op)
		if err != nil {
			t.Fatal(err)
		}
		return append(line, '\n')
	}
	for _, tc := range []struct {
		name      string
		file      [][]byte
		torn      int // bytes of a torn line after the file's lines
		wantLines int
	}{
		{"a whole 3 MiB last line", [][]byte{long(1, 10), long(2, 3<<20)}, 0, 2},
		{"a torn 5 MiB line after a whole 3 MiB one", [][]byte{long(1, 10), long(2, 3<<20)}, 5 << 20, 2},
		{"a torn 2 MiB line after small ones", [][]byte{long(1, 10), long(2, 10)}, 2 << 20, 2},
		{"only a torn 3 MiB line", nil, 3 << 20, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j.jsonl")
			raw := bytes.Join(tc.file, nil)
			if tc.torn > 0 {
				raw = append(raw, long(9, tc.torn)[:tc.torn]...)
			}
			if err := os.WriteFile(path, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			w, recovered, err := journal.Open(path, journal.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if (recovered != "") != (tc.torn > 0) {
				t.Errorf("recovered %q with a torn line of %d bytes", recovered, tc.torn)
			}
			if err := w.Record(context.Background(), engine.Operation{Kind: engine.OpMessageSent, ConversationID: "c2"}); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			ops := readBack(t, path)
			if len(ops) != tc.wantLines+1 || ops[len(ops)-1].Seq != uint64(tc.wantLines+1) {
				t.Fatalf("read back %d lines, the last with seq %d; want %d, the last with seq %d",
					len(ops), ops[len(ops)-1].Seq, tc.wantLines+1, tc.wantLines+1)
			}
		})
	}
}

// TestRecordRefusesALineTheReaderCannotRead: a line over MaxLineBytes would
// make the journal unreadable; the record fails and nothing is written.
func TestRecordRefusesALineTheReaderCannotRead(t *testing.T) {
	var out bytes.Buffer
	w := journal.NewWriter(&out, journal.Options{Fsync: journal.FsyncNever})
	op := engine.Operation{Kind: engine.OpMessageSent, ConversationID: "c1", Message: strings.Repeat("m", journal.MaxLineBytes)}
	if err := w.Record(context.Background(), op); err == nil || !strings.Contains(err.Error(), "message_sent line") {
		t.Fatalf("Record of a line over the limit: %v", err)
	}
	op.Message = strings.Repeat("m", journal.MaxLineBytes-200)
	if err := w.Record(context.Background(), op); err != nil {
		t.Fatalf("Record of a line just under the limit: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ops, _, err := journal.ReadAll(&out)
	if err != nil || len(ops) != 1 || ops[0].Seq != 1 {
		t.Fatalf("read back %d ops: %v", len(ops), err)
	}
}

// TestAnswerTooLongForAJournalLine: a worker's answer over the line limit
// fails the dispatch, and the journal still tells a legal story: the
// conversation is closed, without the result, with the record error, and
// replays as that error.
func TestAnswerTooLongForAJournalLine(t *testing.T) {
	huge := engine.Payload{ContentType: "text/plain", Data: bytes.Repeat([]byte("x"), journal.MaxLineBytes)}
	raw := recordDispatches(t, map[string]local.Handler{
		"w1": func(context.Context, engine.ActivityRequest) engine.ActivityResult { return engine.Completed(huge) },
	}, []engine.ActivityRequest{request("wf-1", "a")})
	ops, truncated, err := journal.ReadAll(bytes.NewReader(raw))
	if err != nil || truncated != 0 {
		t.Fatalf("read: %v, torn line %d", err, truncated)
	}
	if p := check(ops); len(p) != 0 {
		t.Fatalf("problems: %v", p)
	}
	out := journal.Outcomes(ops, nil)
	if len(out) != 1 || !errors.Is(out[0].Err, engine.ErrRecord) || !out[0].Result.IsZero() {
		t.Fatalf("outcomes = %+v, want one record error without a result", out)
	}
}

// readBack reads the journal at path whole; a torn line fails the test.
func readBack(t *testing.T, path string) []engine.Operation {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops, truncated, err := journal.ReadAll(f)
	if err != nil || truncated != 0 {
		t.Fatalf("read %s: %v, a torn line at %d", path, err, truncated)
	}
	return ops
}

// check runs a Checker over ops, numbered from 1, and returns the problems
// it finds with the conversations left open, in line order.
func check(ops []engine.Operation) []journal.Problem {
	c := journal.NewChecker()
	var out []journal.Problem
	for i, op := range ops {
		out = append(out, c.Add(i+1, op)...)
	}
	out = append(out, c.Unfinished()...)
	slices.SortStableFunc(out, func(a, b journal.Problem) int { return cmp.Compare(a.Line, b.Line) })
	return out
}
