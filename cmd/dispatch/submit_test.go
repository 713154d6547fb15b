package main

import (
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/broker"
	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/node"
	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/service"
)

// submitConfig has a channel for each answer the tests want.
const submitConfig = `version: 1
channels:
  - namespace: prod
    task_queue: ok
    routing: {lang: lua, source: "function route(r, c) return dispatch.least_loaded(c) end"}
    workers: [{id: w1, max_in_flight: 16}]
  - namespace: prod
    task_queue: fail
    routing: {lang: lua, source: "function route(r, c) return dispatch.least_loaded(c) end"}
    workers: [{id: f1, max_in_flight: 4, behavior: {fail_rate: 1}}]
  - namespace: prod
    task_queue: slow
    routing: {lang: lua, source: "function route(r, c) return dispatch.least_loaded(c) end"}
    workers: [{id: s1, behavior: {latency: 1h}}]
  - namespace: prod
    task_queue: tell
    routing: {lang: lua, source: "function route(r, c) error('wf=' .. r.workflow_id .. ' type=' .. r.activity_type) end"}
    workers: [{id: t1}]
`

// submitNode is a dispatch node and its front door in the test process,
// as dispatch serve runs them: HTTP on loopback and, unless asked not
// to, NATS on an embedded broker.
type submitNode struct {
	http string // the base URL, http://127.0.0.1:PORT
	nats string // the broker's URL
}

// startSubmitNode starts a node for yaml and its service. With serveNATS
// false the broker runs but no node takes requests on it.
func startSubmitNode(t *testing.T, yaml string, serveNATS bool) submitNode {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	cfg, err := config.Parse("conf/dispatch.yaml", []byte(yaml), config.Options{ReadFile: func(name string) ([]byte, error) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(cfg, node.Options{Seed: 1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	svc, err := service.New(service.Options{Node: n, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(svc.Handler())
	t.Cleanup(hs.Close)
	b, err := broker.Start(t.Context(), broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	if serveNATS {
		nc, err := b.Connect()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if err := svc.ServeNATS(t.Context(), nc); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { // runs first: what a test left running is abandoned at once
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = svc.Drain(ctx)
	})
	return submitNode{http: hs.URL, nats: b.URL()}
}

// transports are the two ways to reach a node, as submit's flags.
func (n submitNode) transports() map[string][]string {
	return map[string][]string{"nats": {"--nats", n.nats}, "http": {"--http", n.http}}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func submitArgs(transport []string, args ...string) []string {
	return append(append([]string{"submit"}, transport...), args...)
}

// One activity over each transport: the output of a completed one on
// stdout, the kind and error of a failed one on stderr, the answer with
// --json.
func TestSubmitOne(t *testing.T) {
	n := startSubmitNode(t, submitConfig, true)
	for name, tr := range n.transports() {
		t.Run(name, func(t *testing.T) {
			for _, tc := range []struct {
				name   string
				stdin  string
				args   []string
				code   int
				stdout string // exactly
				stderr string // a regexp
			}{
				{"json output", "", []string{"--channel", "prod/ok", "--input", `{"to": "a"}`}, exitOK, "{\"to\":\"a\"}\n", "^$"},
				{"text output", "", []string{"--channel", "prod/ok", "--input", `"hello"`}, exitOK, "hello\n", "^$"},
				{"text ending its line", "", []string{"--channel", "prod/ok", "--input", `"hello\n"`}, exitOK, "hello\n", "^$"},
				{"input from stdin", `[1, 2]`, []string{"--channel", "aion.dispatch.prod.ok", "--input", "-"}, exitOK, "[1,2]\n", "^$"},
				{"no input", "", []string{"--channel", "prod/ok", "--input", "null"}, exitOK, "", "^$"},
				{"failed", "", []string{"--channel", "prod/fail", "--input", `{}`}, exitError, "",
					`^dispatch submit: activity_failed: simulated failure \(fail_rate 1\)\n$`},
				{"unknown channel", "", []string{"--channel", "prod/fax", "--input", `{}`}, exitError, "",
					`^dispatch submit: unknown_channel: unknown channel prod/fax: the config in service has no such channel\n$`},
				{"default workflow id and activity type", "", []string{"--channel", "prod/tell", "--input", `{}`}, exitError, "",
					`^dispatch submit: routing_failed: .*wf=submit-[0-9a-f]{8} type=tell`},
				{"given workflow id and activity type", "", []string{"--channel", "prod/tell", "--input", `{}`,
					"--workflow-id", "wf-9", "--activity-type", "send"}, exitError, "", `^dispatch submit: routing_failed: .*wf=wf-9 type=send`},
				{"timeouts sent", "", []string{"--channel", "prod/slow", "--input", `{}`, "--schedule-to-close", "20ms"}, exitError, "",
					`^dispatch submit: timeout: .*schedule-to-close`},
			} {
				t.Run(tc.name, func(t *testing.T) {
					code, stdout, stderr := runCLI(t, tc.stdin, submitArgs(tr, tc.args...)...)
					if code != tc.code || stdout != tc.stdout || !regexp.MustCompile(tc.stderr).MatchString(stderr) {
						t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr matching %q",
							code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
					}
				})
			}
			t.Run("json", func(t *testing.T) {
				code, stdout, stderr := runCLI(t, "", submitArgs(tr, "--channel", "prod/ok", "--input", `{"to": "a"}`, "--json")...)
				var a protocol.Answer
				if err := json.Unmarshal([]byte(stdout), &a); err != nil || code != exitOK || stderr != "" || strings.Count(stdout, "\n") != 1 {
					t.Fatalf("exit %d, stdout %q (%v), stderr %q", code, stdout, err, stderr)
				}
				if a.Status != protocol.StatusCompleted || string(a.Output) != `{"to":"a"}` || a.ContentType != "application/json" ||
					a.WorkerID != "w1" || a.ConversationID == "" || a.Attempts != 1 {
					t.Errorf("answer %+v", a)
				}
				code, stdout, stderr = runCLI(t, "", submitArgs(tr, "--channel", "prod/fail", "--input", `{}`, "--json")...)
				a = protocol.Answer{}
				if err := json.Unmarshal([]byte(stdout), &a); err != nil || code != exitError || stderr != "" {
					t.Fatalf("exit %d, stdout %q (%v), stderr %q", code, stdout, err, stderr)
				}
				if a.Status != protocol.StatusFailed || a.Kind != protocol.KindActivityFailed || a.WorkerID != "f1" ||
					!strings.Contains(a.Error, "simulated failure") {
					t.Errorf("answer %+v", a)
				}
			})
		})
	}
}

// A load: every activity answered and counted, over each transport.
func TestSubmitLoad(t *testing.T) {
	n := startSubmitNode(t, submitConfig, true)
	for name, tr := range n.transports() {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "", submitArgs(tr, "--channel", "prod/ok", "--input", `{"n": 1}`,
				"--count", "200", "--concurrency", "16")...)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit %d, stderr %q, stdout %s", code, stderr, stdout)
			}
			for _, want := range []string{"^sent 200 to prod/ok at " + regexp.QuoteMeta(tr[1]) + ".*, 16 at a time\n",
				"\ncompleted 200, failed 0, transport errors 0\n", "\nelapsed [^,]+, [0-9.]+ dispatches/s\n",
				"\nlatency p50 [^,]+, p90 [^,]+, p99 [^,]+, max [^,]+\n$"} {
				if !regexp.MustCompile(want).MatchString(stdout) {
					t.Errorf("summary lacks %q:\n%s", want, stdout)
				}
			}

			code, stdout, stderr = runCLI(t, "", submitArgs(tr, "--channel", "prod/ok", "--input", `{"n": 1}`,
				"--count", "200", "--concurrency", "16", "--json")...)
			var sum loadSummary
			if err := json.Unmarshal([]byte(stdout), &sum); err != nil || code != exitOK || stderr != "" {
				t.Fatalf("exit %d, stdout %q (%v), stderr %q", code, stdout, err, stderr)
			}
			l := sum.Latency
			if sum.Channel != "prod/ok" || sum.Sent != 200 || sum.Completed != 200 || sum.Failed != 0 || len(sum.FailedByKind) != 0 ||
				sum.TransportErrors != 0 || sum.Concurrency != 16 || sum.ElapsedSeconds <= 0 || sum.DispatchesPerSecond <= 0 ||
				l == nil || l.P50 <= 0 || l.P50 > l.P90 || l.P90 > l.P99 || l.P99 > l.Max || l.Max > sum.ElapsedSeconds {
				t.Errorf("summary %s", stdout)
			}
		})
	}
	t.Run("failures by kind", func(t *testing.T) {
		code, stdout, _ := runCLI(t, "", "submit", "--nats", n.nats, "--channel", "prod/fail", "--input", `{}`, "--count", "6", "--concurrency", "3")
		if code != exitError || !strings.Contains(stdout, "\ncompleted 0, failed 6 (activity_failed 6), transport errors 0\n") {
			t.Errorf("exit %d:\n%s", code, stdout)
		}
		code, stdout, _ = runCLI(t, "", "submit", "--http", n.http, "--channel", "prod/fax", "--input", `{}`, "--count", "4", "--json")
		var sum loadSummary
		if err := json.Unmarshal([]byte(stdout), &sum); err != nil || code != exitError || sum.Sent != 4 || sum.Failed != 4 ||
			sum.FailedByKind[protocol.KindUnknownChannel] != 4 || sum.Completed != 0 || sum.Concurrency != 1 {
			t.Errorf("exit %d: %s (%v)", code, stdout, err)
		}
	})
	t.Run("one workflow id for all", func(t *testing.T) {
		code, stdout, _ := runCLI(t, "", "submit", "--nats", n.nats, "--channel", "prod/ok", "--input", `{}`, "--count", "5",
			"--concurrency", "5", "--workflow-id", "wf-same")
		if code != exitOK || !strings.Contains(stdout, "\ncompleted 5,") {
			t.Errorf("exit %d:\n%s", code, stdout)
		}
	})
}

// No answer at all: the message says where it looked and what to check.
func TestSubmitTransportErrors(t *testing.T) {
	n := startSubmitNode(t, submitConfig, true)
	unserved := startSubmitNode(t, submitConfig, false) // a NATS server no node takes requests on
	closed := closedPort(t)
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string // a regexp
	}{
		{"no NATS server", []string{"--nats", "nats://" + closed}, `^dispatch submit: connect to NATS at nats://` + regexp.QuoteMeta(closed) +
			`: .*; check that dispatch serve runs and that its NATS server listens there`},
		{"no HTTP server", []string{"--http", "http://" + closed}, `^dispatch submit: POST http://` + regexp.QuoteMeta(closed) +
			`/v1/channels/prod/ok/dispatch: .*connection refused; check that dispatch serve runs and serves HTTP at that address`},
		{"no node on the NATS server", []string{"--nats", unserved.nats},
			`^dispatch submit: no dispatch serve node answers aion\.dispatch\.prod\.ok on NATS at ` + regexp.QuoteMeta(unserved.nats) +
				`: check that one runs and is connected to this server\n$`},
		{"not a node at the HTTP URL", []string{"--http", n.http + "/metrics"}, `^dispatch submit: POST .*/metrics/v1/channels/prod/ok/dispatch: HTTP 404 Not Found, not a dispatch answer \(content type "text/plain; charset=utf-8"\): "404 page not found\\n"\n$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, "", submitArgs(tc.args, "--channel", "prod/ok", "--input", `{}`)...)
			if code != exitError || stdout != "" || !regexp.MustCompile(tc.stderr).MatchString(stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want stderr matching %q", code, stdout, stderr, tc.stderr)
			}
		})
	}
	for name, tr := range n.transports() {
		t.Run("client timeout over "+name, func(t *testing.T) { // s1 takes an hour
			// The node is told the client's timeout and answers first: the
			// client waits answerGrace more for that answer. Under load the
			// 20ms may pass before s1 is selected: then no worker is named.
			code, stdout, stderr := runCLI(t, "", submitArgs(tr, "--channel", "prod/slow", "--input", `{}`, "--timeout", "20ms")...)
			if code != exitError || stdout != "" || !regexp.MustCompile(`^dispatch submit: timeout: dispatch prod/slow workflow submit-\w+( worker s1)?: no answer within 20ms, the client's Dispatch-Timeout\n$`).MatchString(stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
			}
		})
	}
	t.Run("in a load", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "", "submit", "--http", "http://"+closed, "--channel", "prod/ok", "--input", `{}`, "--count", "3")
		if code != exitError || stderr != "" || !strings.Contains(stdout, "\ncompleted 0, failed 0, transport errors 3\nfirst transport error: POST http://"+closed) ||
			strings.Contains(stdout, "latency") {
			t.Errorf("exit %d, stderr %q:\n%s", code, stderr, stdout)
		}
	})
}

// A wrong command line is exit 2, before anything is sent.
func TestSubmitUsage(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "input.json")
	if err := os.WriteFile(file, []byte(`{"a": 1, "a": 2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	closed := "nats://" + closedPort(t)
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no channel", []string{"--input", "{}"}, "--channel NS/QUEUE is required"},
		{"bad channel", []string{"--channel", "prod", "--input", "{}"}, "--channel: channel \"prod\": want NAMESPACE/TASK_QUEUE"},
		{"both transports", []string{"--channel", "prod/ok", "--input", "{}", "--http", "http://127.0.0.1:1"}, "--nats and --http: give one"},
		{"no input", []string{"--channel", "prod/ok"}, "--input is required"},
		{"input not JSON", []string{"--channel", "prod/ok", "--input", "hello"}, `--input: not a JSON value; give a text as a JSON string, as '"hello"'`},
		{"input file missing", []string{"--channel", "prod/ok", "--input", "@" + filepath.Join(dir, "nope.json")}, "--input: open " + dir},
		{"input key twice", []string{"--channel", "prod/ok", "--input", "@" + file}, `duplicate key "a"`},
		{"text under a JSON type", []string{"--channel", "prod/ok", "--input", `"hi"`, "--content-type", "application/json"}, "input: the content type says JSON"},
		{"count", []string{"--channel", "prod/ok", "--input", "{}", "--count", "0"}, "--count 0: want 1 or more"},
		{"concurrency", []string{"--channel", "prod/ok", "--input", "{}", "--concurrency", "0"}, "--concurrency 0: want 1 or more"},
		{"timeout", []string{"--channel", "prod/ok", "--input", "{}", "--timeout", "0s"}, "--timeout 0s: want a positive duration"},
		{"negative start-to-close", []string{"--channel", "prod/ok", "--input", "{}", "--start-to-close", "-1s"}, "--start-to-close -1s: want a positive duration"},
		{"schedule-to-start over schedule-to-close", []string{"--channel", "prod/ok", "--input", "{}", "--schedule-to-start", "2s",
			"--schedule-to-close", "1s"}, "schedule_to_start 2s is longer than schedule_to_close 1s"},
		{"http URL without scheme", []string{"--channel", "prod/ok", "--input", "{}", "--http", "127.0.0.1:8080"}, `--http: "127.0.0.1:8080": want the node's address as http://HOST:PORT`},
		{"stray argument", []string{"--channel", "prod/ok", "--input", "{}", "extra"}, `unexpected argument "extra"`},
		{"unknown flag", []string{"--channel", "prod/ok", "--input", "{}", "--rate", "5"}, "flag provided but not defined: -rate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"submit"}
			if !strings.HasPrefix(tc.name, "http URL") { // a NATS URL that is never reached
				args = append(args, "--nats", closed)
			}
			code, stdout, stderr := runCLI(t, "", append(args, tc.args...)...)
			if code != exitUsage || stdout != "" || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and stderr with %q", code, stdout, stderr, tc.stderr)
			}
		})
	}
	code, stdout, _ := runCLI(t, "", "submit", "--help")
	if code != exitOK || !strings.HasPrefix(stdout, "Usage: dispatch submit") || !strings.Contains(stdout, "Examples:") {
		t.Errorf("--help: exit %d:\n%s", code, stdout)
	}
	code, stdout, _ = runCLI(t, "", "help")
	if code != exitOK || !strings.Contains(stdout, "\tsubmit     send activities to a running dispatch serve") {
		t.Errorf("help: exit %d:\n%s", code, stdout)
	}
}
