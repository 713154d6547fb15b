//go:build linux

package command_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/command"
	"github.com/aion-dispatch/dispatch/engine"
)

// startServe starts a Server running the serve helper, and shuts it down
// when the test ends.
func startServe(t *testing.T, opts command.ServerOptions, env ...string) *command.Server {
	t.Helper()
	opts.Path = self(t)
	opts.Env = append(helperEnviron("serve"), env...)
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = 8
	}
	s, err := command.StartServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

// order is an activity whose JSON input tells the serve helper what to do.
func order(v string) engine.ActivityRequest {
	return engine.ActivityRequest{WorkflowID: "wf", ActivityType: "test",
		Input: engine.Payload{ContentType: "application/json", Data: []byte(v)}}
}

// call runs Handle in a goroutine; wait returns its result.
type pending struct {
	t    *testing.T
	done chan engine.ActivityResult
}

func call(t *testing.T, ctx context.Context, s *command.Server, req engine.ActivityRequest) *pending {
	p := &pending{t: t, done: make(chan engine.ActivityResult, 1)}
	go func() {
		res, err := s.Handle(ctx, req)
		if err != nil {
			res = engine.Failed("Handle error: " + err.Error())
		}
		p.done <- res
	}()
	return p
}

func (p *pending) wait() engine.ActivityResult {
	p.t.Helper()
	select {
	case res := <-p.done:
		return res
	case <-time.After(guard):
		p.t.Fatal("Handle did not return")
		return engine.ActivityResult{}
	}
}

func serve(t *testing.T, s *command.Server, req engine.ActivityRequest) engine.ActivityResult {
	t.Helper()
	return call(t, context.Background(), s, req).wait()
}

func completed(t *testing.T, res engine.ActivityResult, output string) {
	t.Helper()
	if res.Status != engine.StatusCompleted || string(res.Output.Data) != output {
		t.Errorf("got %v %q %q, want completed %q", res.Status, res.Output.Data, res.Error, output)
	}
}

func failed(t *testing.T, res engine.ActivityResult, says ...string) {
	t.Helper()
	if res.Status != engine.StatusFailed {
		t.Errorf("got %v %q, want failed", res.Status, res.Output.Data)
		return
	}
	for _, s := range says {
		if !strings.Contains(res.Error, s) {
			t.Errorf("error %q does not say %q", res.Error, s)
		}
	}
}

func TestServerAnswers(t *testing.T) {
	s := startServe(t, command.ServerOptions{})
	tests := []struct {
		name   string
		req    engine.ActivityRequest
		status engine.ResultStatus
		output engine.Payload
		errMsg string
	}{
		{name: "json output", req: order(`{"echo": {"b": [1, 2]}}`), status: engine.StatusCompleted,
			output: engine.Payload{ContentType: "application/json", Data: []byte(`{"b":[1,2]}`)}},
		{name: "null output", req: order(`{"echo": null, "self": {"status": "completed", "output": null}}`),
			status: engine.StatusCompleted},
		{name: "base64 output with its content type", req: engine.ActivityRequest{Input: engine.Payload{ContentType: "text/plain", Data: []byte("héllo\n")}},
			status: engine.StatusCompleted, output: engine.Payload{ContentType: "text/plain", Data: []byte("héllo\n")}},
		{name: "invalid JSON sent as base64", req: engine.ActivityRequest{Input: engine.Payload{ContentType: "application/json", Data: []byte("{")}},
			status: engine.StatusCompleted, output: engine.Payload{ContentType: "application/json", Data: []byte("{")}},
		{name: "output content type", req: order(`{"self": {"status": "completed", "output": "x", "content_type": "application/vnd.x+json"}}`),
			status: engine.StatusCompleted, output: engine.Payload{ContentType: "application/vnd.x+json", Data: []byte(`"x"`)}},
		{name: "failed", req: order(`{"fail": "no such user"}`), status: engine.StatusFailed, errMsg: "no such user"},
		{name: "failed without a message", req: order(`{"self": {"status": "failed", "error": ""}}`), status: engine.StatusFailed,
			errMsg: "program " + self(t) + " failed the activity without an error message"},
		{name: "malformed response for the activity", req: order(`{"self": {"status": "done"}}`), status: engine.StatusFailed,
			errMsg: "program " + self(t) + ` sent a malformed response: malformed response line: status "done", want "completed" or "failed"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := serve(t, s, tt.req)
			want := engine.ActivityResult{Status: tt.status, Output: tt.output, Error: tt.errMsg}
			if res.Status != want.Status || res.Error != want.Error || res.Output.ContentType != want.Output.ContentType ||
				!bytes.Equal(res.Output.Data, want.Output.Data) {
				t.Errorf("got %+v (%q)\nwant %+v (%q)", res, res.Output.Data, want, want.Output.Data)
			}
		})
	}
}

func TestServerRequestLine(t *testing.T) {
	s := startServe(t, command.ServerOptions{})
	deadline := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	req := engine.ActivityRequest{WorkflowID: "wf-7", ActivityType: "resize", TaskQueue: "media/images",
		Input: engine.Payload{ContentType: "application/json; charset=utf-8", Data: []byte("{\n  \"request\": true\n}")}, StartToClose: 90 * time.Second}
	res := call(t, ctx, s, req).wait()
	var got map[string]any
	if err := json.Unmarshal(res.Output.Data, &got); err != nil {
		t.Fatalf("%v: %+v", err, res)
	}
	want := map[string]any{"v": 1.0, "type": "activity", "id": got["id"], "workflow_id": "wf-7", "activity_type": "resize",
		"task_queue": "media/images", "content_type": "application/json; charset=utf-8", "input": map[string]any{"request": true},
		"start_to_close_ms": 90000.0, "deadline": "2030-01-02T03:04:05.000006Z"}
	if id, _ := got["id"].(string); id == "" {
		t.Errorf("id %v", got["id"])
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Errorf("request line\n%s\nwant\n%s", gb, wb)
	}
}

// TestServerInFlight holds two activities at once, answers the second
// first, and cancels a third: each gets its own answer.
func TestServerInFlight(t *testing.T) {
	s := startServe(t, command.ServerOptions{})
	a := call(t, context.Background(), s, order(`{"hold": "a"}`))
	b := call(t, context.Background(), s, order(`{"hold": "b"}`))
	ctx, cancel := context.WithCancel(context.Background())
	c := call(t, ctx, s, order(`{"hold": "c"}`))
	completed(t, serve(t, s, order(`{"wait_held": "a"}`)), `"held"`)
	completed(t, serve(t, s, order(`{"wait_held": "b"}`)), `"held"`)
	completed(t, serve(t, s, order(`{"wait_held": "c"}`)), `"held"`)

	completed(t, serve(t, s, order(`{"release": "b"}`)), `"released"`)
	completed(t, b.wait(), `"released b"`)
	cancel()
	failed(t, c.wait(), "the activity was cancelled (context canceled)")
	// The cancel line went out before the next request line.
	completed(t, serve(t, s, order(`{"cancels": true}`)), `["c"]`)
	completed(t, serve(t, s, order(`{"release": "a"}`)), `"released"`)
	completed(t, a.wait(), `"released a"`)
	if st := s.Stats(); st.Starts != 1 || st.Refused != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestServerMaxInFlight: an activity beyond MaxInFlight waits for a slot,
// and fails without being sent when its ctx ends first.
func TestServerMaxInFlight(t *testing.T) {
	ready := newReady(t)
	s := startServe(t, command.ServerOptions{MaxInFlight: 1}, ready.env())
	ready.pids(t, 1) // started
	a := call(t, context.Background(), s, order(`{"hold": "a"}`))
	ready.pids(t, 1) // a is held: the only slot is taken
	ctx, cancel := context.WithCancel(context.Background())
	b := call(t, ctx, s, order(`{"echo": 1}`))
	cancel()
	failed(t, b.wait(), "program "+self(t)+" was not sent the activity: it was cancelled (context canceled)")
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	failed(t, a.wait(), "end of input")
}

// logs collects a server's log records.
type logs struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logs) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func (l *logs) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, string(b))
	return len(b), nil
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.msgs, "")
}

// TestServerRefuses: lines that are not an answer to an activity in flight
// are logged and refused, and no activity is answered twice.
func TestServerRefuses(t *testing.T) {
	var log logs
	s := startServe(t, command.ServerOptions{Logger: log.logger(), MaxLine: 100})
	lines := []string{
		`not json`,
		`{"id": "999", "status": "completed"}`,
		`{"id": 12, "status": "completed"}`,
		`{"id": "997", "status": "completed"} {}`,
		`[]`,
		`{"id": "998", "status": "completed", "extra": 1}`,
		`{"id": "` + strings.Repeat("x", 200) + `"}`,
		``, // a blank line is skipped, not refused
	}
	raw, _ := json.Marshal(map[string]any{"raw": lines})
	completed(t, serve(t, s, order(string(raw))), `"after raw"`)
	completed(t, serve(t, s, order(`{"twice": true}`)), `"first"`)
	// The second answer of "twice" is refused; a round trip after it
	// makes sure it has been read.
	completed(t, serve(t, s, order(`{"echo": 1}`)), `1`)
	if st := s.Stats(); st.Refused != len(lines)-1+1 || st.Starts != 1 {
		t.Errorf("stats %+v, want %d refused", st, len(lines))
	}
	for _, says := range []string{"invalid character", `id=999 reason="no activity in flight has this id`, `id=998 reason="malformed response line: json: unknown field`, "no activity in flight has this id",
		"data after the object", "unknown field", "a line longer than 100 bytes", `"id\" is not a non-empty string`} {
		if !strings.Contains(log.String(), says) {
			t.Errorf("the log does not say %q:\n%s", says, log.String())
		}
	}
}

// TestServerCrash: when the program exits, every activity in flight fails
// with its exit and stderr, and the next activity starts it again.
func TestServerCrash(t *testing.T) {
	s := startServe(t, command.ServerOptions{})
	a := call(t, context.Background(), s, order(`{"hold": "a"}`))
	completed(t, serve(t, s, order(`{"wait_held": "a"}`)), `"held"`)
	crash := serve(t, s, order(`{"crash": "boom: out of memory"}`))
	failed(t, crash, "program "+self(t)+" exited with status 3 with 2 activities in flight: boom: out of memory")
	failed(t, a.wait(), "exited with status 3 with 2 activities in flight: boom")
	completed(t, serve(t, s, order(`{"echo": "again"}`)), `"again"`)
	if st := s.Stats(); st.Starts != 2 || st.Exits != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestServerClosedStdout: a program that closes its stdout but runs on is
// stopped, and its activities fail saying so.
func TestServerClosedStdout(t *testing.T) {
	s := startServe(t, command.ServerOptions{Program: command.Program{KillGrace: 20 * time.Millisecond}})
	failed(t, serve(t, s, order(`{"close_stdout": true}`)), "closed its stdout; sent SIGTERM to its process group; it was killed by SIGTERM with 1 activities in flight")
	completed(t, serve(t, s, order(`{"echo": 2}`)), `2`)
}

func TestServerShutdown(t *testing.T) {
	t.Run("at EOF", func(t *testing.T) {
		s := startServe(t, command.ServerOptions{})
		a := call(t, context.Background(), s, order(`{"hold": "a"}`))
		completed(t, serve(t, s, order(`{"wait_held": "a"}`)), `"held"`)
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		// The helper answers what it holds at EOF, then exits 0.
		failed(t, a.wait(), "end of input")
		_, err := s.Handle(context.Background(), order(`{"echo": 1}`))
		if !errors.Is(err, command.ErrClosed) || !strings.Contains(err.Error(), "program "+self(t)) {
			t.Errorf("Handle after Shutdown: %v", err)
		}
	})
	t.Run("signalled", func(t *testing.T) {
		ready := newReady(t)
		s := startServe(t, command.ServerOptions{Program: command.Program{KillGrace: 20 * time.Millisecond}},
			"COMMAND_TEST_SERVE_EOF=ignore", "COMMAND_TEST_SERVE_TERM=ignore", ready.env())
		pid := ready.pids(t, 1)[0]
		a := call(t, context.Background(), s, order(`{"hold": "a"}`))
		completed(t, serve(t, s, order(`{"wait_held": "a"}`)), `"held"`)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown: %v", err)
		}
		failed(t, a.wait(), "was killed by SIGKILL with 1 activities in flight")
		if exists(pid) {
			t.Errorf("the program %d is still there", pid)
		}
	})
}
