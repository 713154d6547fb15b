package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/metrics"
	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/service"
	"github.com/aion-dispatch/dispatch/worker"
)

const leastLoaded = `{lang: lua, source: "function route(r, c) return dispatch.least_loaded(c) end"}`

// The configs below give scripts 2s, not the default 50ms: the deadline is
// wall-clock time, and a call starved of CPU under a loaded test run once
// missed it, failing a test about something else.

// simulated has a channel for each answer a dispatch can get.
var simulated = `version: 1
defaults: {script_timeout: 2s}
channels:
  - namespace: prod
    task_queue: ok
    routing: ` + leastLoaded + `
    workers: [{id: w1, max_in_flight: 4}]
  - namespace: prod
    task_queue: fail
    routing: ` + leastLoaded + `
    workers: [{id: f1, behavior: {fail_rate: 1}}]
  - namespace: prod
    task_queue: none
    routing: ` + leastLoaded + `
    when_full: fail
    workers: []
  - namespace: prod
    task_queue: slow
    max_backlog: 1
    routing: ` + leastLoaded + `
    workers: [{id: s1, behavior: {latency: 1h}}]
  - namespace: prod
    task_queue: nobody
    routing: {lang: lua, source: "function route(r, c) return nil end"}
    when_full: fail
    workers: [{id: n1}]
  - namespace: prod
    task_queue: broken
    routing: {lang: lua, source: "function route(r, c) error('no route for ' .. r.activity_type) end"}
    workers: [{id: b1}]
`

const activity = `{"workflow_id": "wf-1", "activity_type": "send", "input": {"to": "a"}}`

// Every answer over HTTP: its status, its kind, and a message that says
// what happened.
func TestHTTPAnswers(t *testing.T) {
	d := startNode(t, simulated, nil, service.Options{})
	for _, tc := range []struct {
		name, channel, contentType, body string
		status                           int
		kind, says                       string
	}{
		{"completed", "prod/ok", "application/json", activity, 200, "", ""},
		{"the vendor type", "prod/ok", protocol.ContentTypeRequest + "; charset=utf-8", activity, 200, "", ""},
		{"no content type", "prod/ok", "", activity, 200, "", ""},
		{"activity failed", "prod/fail", "application/json", activity, 200, protocol.KindActivityFailed, "simulated failure"},
		{"no workers", "prod/none", "application/json", activity, 503, protocol.KindNoWorkers, "NoWorkersAvailable"},
		{"script chose none, fail when full", "prod/nobody", "application/json", activity, 503, protocol.KindNoWorkers, "chose none of 1 candidate"},
		{"script error", "prod/broken", "application/json", activity, 500, protocol.KindRoutingFailed, "no route for send"},
		{"timeout", "prod/slow", "application/json",
			`{"workflow_id": "wf-1", "activity_type": "send", "schedule_to_close": "20ms"}`, 504, protocol.KindTimeout, "schedule-to-close timeout"},
		{"unknown channel", "prod/nope", "application/json", activity, 404, protocol.KindUnknownChannel, "unknown channel"},
		{"invalid channel", "prod/bad.name", "application/json", activity, 400, protocol.KindBadRequest, "task queue"},
		{"malformed", "prod/ok", "application/json", `{"workflow_id": `, 400, protocol.KindBadRequest, "ends too soon"},
		{"unknown field", "prod/ok", "application/json", `{"workflow_id": "wf", "activity_type": "a", "prio": 1}`, 400, protocol.KindBadRequest, `unknown field "prio"`},
		{"duplicate key", "prod/ok", "application/json", `{"workflow_id": "wf", "workflow_id": "x", "activity_type": "a"}`, 400, protocol.KindBadRequest, "duplicate key"},
		{"missing fields", "prod/ok", "application/json", `{"input": 1}`, 400, protocol.KindBadRequest, "missing workflow_id and activity_type"},
		{"another channel in the body", "prod/ok", "application/json",
			`{"channel": "prod/fail", "workflow_id": "wf", "activity_type": "a"}`, 400, protocol.KindBadRequest, "is not prod/ok"},
		{"the same channel in the body", "prod/ok", "application/json",
			`{"channel": "aion.dispatch.prod.ok", "workflow_id": "wf", "activity_type": "a"}`, 200, "", ""},
		{"wrong content type", "prod/ok", "application/x-www-form-urlencoded", activity, 415, protocol.KindBadRequest, "send application/json"},
		{"oversized", "prod/ok", "application/json", `{"workflow_id": "` + strings.Repeat("w", service.MaxBodySize) + `"}`, 413,
			protocol.KindBadRequest, fmt.Sprintf("over the limit of %d bytes", service.MaxBodySize)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, a := d.post(t, tc.channel, tc.contentType, tc.body)
			if status != tc.status || a.Kind != tc.kind || !strings.Contains(a.Error, tc.says) {
				t.Fatalf("got %d %+v, want %d kind %q saying %q", status, a, tc.status, tc.kind, tc.says)
			}
			wantStatus := protocol.StatusFailed
			if tc.kind == "" {
				wantStatus = protocol.StatusCompleted
			}
			if a.Status != wantStatus {
				t.Fatalf("status %q, want %q", a.Status, wantStatus)
			}
		})
	}
	t.Run("the answer of a completed dispatch", func(t *testing.T) {
		_, a := d.post(t, "prod/ok", "application/json", activity)
		if string(a.Output) != `{"to":"a"}` || a.ContentType != "application/json" || a.WorkerID != "w1" ||
			a.ConversationID == "" || a.Attempts != 1 {
			t.Fatalf("answer %+v", a)
		}
	})
}

// A dispatch beyond a channel's max_backlog is refused with 429 while the
// one before it waits.
func TestHTTPBacklogFull(t *testing.T) {
	d := startNode(t, simulated, nil, service.Options{})
	ctx := context.Background()
	for range 2 { // one on s1, one in the backlog; both held until the test ends
		go d.send("prod/slow", "application/json", activity) // answered when the test ends
	}
	ch, _ := engine.DispatchChannel("prod", "slow")
	waitFor(t, "one activity on s1 and one waiting", func() bool {
		c, _ := d.node.Channel(ctx, ch)
		return c.Backlog == 1 && len(c.Workers) == 1 && c.Workers[0].InFlight == 1
	})
	status, a := d.post(t, "prod/slow", "application/json", activity)
	if status != http.StatusTooManyRequests || a.Kind != protocol.KindBacklogFull {
		t.Fatalf("got %d %+v, want 429 backlog_full", status, a)
	}
}

// The same answers over NATS, on the channel's subject.
func TestNATSAnswers(t *testing.T) {
	b := startBroker(t)
	d := startNode(t, simulated, b, service.Options{})
	client := connect(t, b)
	for _, tc := range []struct {
		name, subject, contentType, body string
		kind, says                       string
	}{
		{"completed", "aion.dispatch.prod.ok", protocol.ContentTypeRequest, activity, "", ""},
		{"plain json", "aion.dispatch.prod.ok", "application/json", activity, "", ""},
		{"no header", "aion.dispatch.prod.ok", "", activity, "", ""},
		{"activity failed", "aion.dispatch.prod.fail", "", activity, protocol.KindActivityFailed, "simulated failure"},
		{"no workers", "aion.dispatch.prod.none", "", activity, protocol.KindNoWorkers, "NoWorkersAvailable"},
		{"unknown channel", "aion.dispatch.prod.nope", "", activity, protocol.KindUnknownChannel, "unknown channel"},
		{"wrong content type", "aion.dispatch.prod.ok", "text/plain", activity, protocol.KindBadRequest, "content type"},
		{"malformed", "aion.dispatch.prod.ok", "", `{`, protocol.KindBadRequest, "ends too soon"},
		{"another channel in the body", "aion.dispatch.prod.ok", "",
			`{"channel": "prod/fail", "workflow_id": "wf", "activity_type": "a"}`, protocol.KindBadRequest, "is not prod/ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := request(client, tc.subject, tc.contentType, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if a.Kind != tc.kind || !strings.Contains(a.Error, tc.says) {
				t.Fatalf("got %+v, want kind %q saying %q", a, tc.kind, tc.says)
			}
			if tc.kind == "" && (string(a.Output) != `{"to":"a"}` || a.WorkerID != "w1" || a.ConversationID == "" || a.Attempts != 1) {
				t.Fatalf("answer %+v", a)
			}
		})
	}
	_ = d
}

// Drain: every dispatch taken before it (over HTTP and NATS) is answered
// when its activity ends; new ones are refused, over HTTP with 503
// "draining", and over NATS the node has left the queue group.
func TestDrainAnswersWhatItTook(t *testing.T) {
	b := startBroker(t)
	d := startNode(t, "version: 1\ndefaults: {script_timeout: 2s}\nchannels:\n  - {namespace: prod, task_queue: held, routing: "+leastLoaded+", workers: []}\n", b, service.Options{})
	h := newHeldWorker()
	runWorker(t, b, worker.Options{ID: "h1", Channels: []string{"prod/held"}, MaxInFlight: 8}, h.handle)
	ch, _ := engine.DispatchChannel("prod", "held")
	waitFor(t, "h1 to register", func() bool { c, _ := d.node.Channel(context.Background(), ch); return len(c.Workers) == 1 })

	client := connect(t, b)
	type answer struct {
		via string
		a   protocol.Answer
		err error
	}
	answers := make(chan answer, 8)
	for i := range 3 {
		go func() {
			status, a, err := d.send("prod/held", "", fmt.Sprintf(`{"workflow_id": "http-%d", "activity_type": "a", "input": %d}`, i, i))
			if err == nil && status != 200 {
				err = fmt.Errorf("status %d", status)
			}
			answers <- answer{"http", a, err}
		}()
		go func() {
			a, err := request(client, "aion.dispatch.prod.held", "", fmt.Sprintf(`{"workflow_id": "nats-%d", "activity_type": "a", "input": %d}`, i, i))
			answers <- answer{"nats", a, err}
		}()
	}
	for range 6 {
		receive(t, "the six activities to start", h.started)
	}
	drained := make(chan error, 1)
	go func() { drained <- d.svc.Drain(context.Background()) }()
	waitFor(t, "the service to drain", d.svc.Draining)

	status, a := d.post(t, "prod/held", "", activity)
	if status != http.StatusServiceUnavailable || a.Kind != protocol.KindDraining {
		t.Fatalf("a dispatch during the drain: %d %+v, want 503 draining", status, a)
	}
	waitFor(t, "the NATS subscription to leave", func() bool {
		_, err := request(client, "aion.dispatch.prod.held", "", activity)
		return errors.Is(err, nats.ErrNoResponders)
	})
	resp, err := d.http.Client().Get(d.http.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while draining: %d", resp.StatusCode)
	}
	select {
	case err := <-drained:
		t.Fatalf("the drain ended (%v) with six dispatches in flight", err)
	default:
	}
	close(h.release)
	for range 6 {
		got := receive(t, "an answer", answers)
		if got.err != nil || got.a.Status != protocol.StatusCompleted {
			t.Fatalf("%s: %+v %v, want completed", got.via, got.a, got.err)
		}
	}
	if err := receive(t, "the drain", drained); err != nil {
		t.Fatal(err)
	}
	if got := h.max.Load(); got > 8 {
		t.Fatalf("h1 held %d at once, max_in_flight 8", got)
	}
}

// A drain whose time runs out answers what is still running "draining",
// at once, and says so.
func TestDrainTimeoutAbandons(t *testing.T) {
	b := startBroker(t)
	d := startNode(t, "version: 1\ndefaults: {script_timeout: 2s}\nchannels:\n  - {namespace: prod, task_queue: held, routing: "+leastLoaded+", workers: []}\n", b, service.Options{})
	h := newHeldWorker()
	defer close(h.release)
	runWorker(t, b, worker.Options{ID: "h1", Channels: []string{"prod/held"}, MaxInFlight: 2}, h.handle)
	ch, _ := engine.DispatchChannel("prod", "held")
	waitFor(t, "h1 to register", func() bool { c, _ := d.node.Channel(context.Background(), ch); return len(c.Workers) == 1 })
	answers := make(chan protocol.Answer, 2)
	for range 2 {
		go func() { _, a, _ := d.send("prod/held", "", activity); answers <- a }()
	}
	for range 2 {
		receive(t, "the activities to start", h.started)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the drain's time is up at once
	err := d.svc.Drain(ctx)
	if err == nil || !strings.Contains(err.Error(), "abandoned") {
		t.Fatalf("drain: %v, want one that says dispatches were abandoned", err)
	}
	for range 2 {
		if a := receive(t, "an answer", answers); a.Kind != protocol.KindDraining || !strings.Contains(a.Error, "drain timeout") {
			t.Fatalf("answer %+v, want kind draining", a)
		}
	}
}

// Two nodes on one NATS share the requests of a channel; when one drains
// (or dies), the other answers all of them; the shared worker never holds
// more than its max_in_flight, whichever node sends to it.
func TestTwoNodesShareTheLoad(t *testing.T) {
	b := startBroker(t)
	cfg := "version: 1\ndefaults: {script_timeout: 2s}\nchannels:\n  - {namespace: prod, task_queue: q, routing: " + leastLoaded + ", workers: []}\n"
	nodes := []*dispatchNode{startNode(t, cfg, b, service.Options{}), startNode(t, cfg, b, service.Options{})}
	h := newHeldWorker()
	close(h.release) // answers at once
	runWorker(t, b, worker.Options{ID: "shared", Channels: []string{"prod/q"}, MaxInFlight: 2}, h.handle)
	ch, _ := engine.DispatchChannel("prod", "q")
	for _, n := range nodes {
		waitFor(t, "the worker to register with both nodes", func() bool {
			c, _ := n.node.Channel(context.Background(), ch)
			return len(c.Workers) == 1
		})
	}
	client := connect(t, b)
	var retried atomic.Int32
	send := func(count int, retry bool) {
		errs := make(chan error, count)
		for i := range count {
			go func() {
				body := fmt.Sprintf(`{"workflow_id": "wf-%d", "activity_type": "a"}`, i)
				a, err := request(client, "aion.dispatch.prod.q", "", body)
				for try := 0; retry && errors.Is(err, nats.ErrTimeout) && try < 3; try++ {
					// Taken by the node as it died: lost with it, and sent
					// again, as a client of a queue group does.
					retried.Add(1)
					a, err = request(client, "aion.dispatch.prod.q", "", body)
				}
				if err == nil && a.Status != protocol.StatusCompleted {
					err = fmt.Errorf("answer %+v", a)
				}
				errs <- err
			}()
		}
		for range count {
			if err := receive(t, "an answer", errs); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(200, false)
	for i, n := range nodes {
		if got := n.node.Stats().Counters.Dispatched; got == 0 {
			t.Errorf("node %d took none of 200 requests", i)
		}
	}
	// One node goes: its connection closes, as when its process dies.
	// Requests the server hands it while it goes are lost with it (the
	// client sends them again); every request is answered.
	nodes[0].nc.Close()
	before := nodes[1].node.Stats().Counters.Dispatched
	send(100, true)
	if got := nodes[1].node.Stats().Counters.Dispatched - before; got < 100 {
		t.Fatalf("the node left took %d of 100 requests", got)
	}
	t.Logf("%d requests sent again after the node died", retried.Load())
	if got := h.max.Load(); got > 2 {
		t.Fatalf("the shared worker held %d at once, max_in_flight 2", got)
	}
}

// Requests the NATS server delivered to a node before its drain
// unsubscribed are answered by that node: a drain under load answers
// each request (or the client hears there is no responder left), never
// "draining".
func TestDrainServesWhatNATSDelivered(t *testing.T) {
	b := startBroker(t)
	d := startNode(t, simulated, b, service.Options{})
	client := connect(t, b)
	const n = 2000
	answers := make(chan error, n)
	for i := range n {
		go func() {
			a, err := request(client, "aion.dispatch.prod.ok", "", fmt.Sprintf(`{"workflow_id": "wf-%d", "activity_type": "a", "input": 1}`, i))
			switch {
			case errors.Is(err, nats.ErrNoResponders):
				err = nil // after the drain: another node's, had there been one
			case err == nil && a.Status != protocol.StatusCompleted:
				err = fmt.Errorf("answer %+v", a)
			}
			answers <- err
		}()
	}
	// The drain starts while requests are still coming in, some of them
	// delivered to the node's subscription and not yet read.
	waitFor(t, "the node to take some", func() bool { return d.node.Stats().Counters.Dispatched >= 50 })
	if err := d.svc.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := receive(t, "an answer", answers); err != nil {
			t.Fatal(err)
		}
	}
}

// During a drain, a refusal for a channel the config lacks counts under
// channel "", like any unknown channel: clients make no series at will.
func TestRefusalsDuringDrainMakeNoSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := startNode(t, simulated, nil, service.Options{Observer: m})
	if err := d.svc.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []string{"prod/made-up", "prod/ok"} {
		if status, a := d.post(t, ch, "", activity); status != http.StatusServiceUnavailable || a.Kind != protocol.KindDraining {
			t.Fatalf("%s while draining: %d %+v", ch, status, a)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var channels []string
	for _, mf := range mfs {
		if mf.GetName() != "dispatch_duration_seconds" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if l.GetName() == "channel" {
					channels = append(channels, l.GetValue())
				}
			}
		}
	}
	if !slices.Equal(channels, []string{"", "prod/ok"}) {
		t.Fatalf("dispatch_duration_seconds has channels %q, want \"\" and prod/ok", channels)
	}
}

// A dispatch without schedule_to_close is bounded by the node's
// DispatchTimeout, and answered 504 saying so.
func TestDispatchTimeout(t *testing.T) {
	d := startNode(t, simulated, nil, service.Options{DispatchTimeout: 20 * time.Millisecond})
	status, a := d.post(t, "prod/slow", "", activity)
	if status != http.StatusGatewayTimeout || a.Kind != protocol.KindTimeout || !strings.Contains(a.Error, "no answer within 20ms") {
		t.Fatalf("got %d %+v, want 504 timeout naming the node's bound", status, a)
	}
}

// An answer is not HTML: <, > and & reach the client as they are.
func TestAnswersAreNotHTMLEscaped(t *testing.T) {
	d := startNode(t, simulated, nil, service.Options{})
	resp, err := d.http.Client().Post(d.http.URL+"/v1/channels/prod/ok/dispatch", "application/json",
		strings.NewReader(`{"workflow_id": "wf-1", "activity_type": "a", "input": "<a & b>"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), `"output":"<a & b>"`) {
		t.Fatalf("answer %s", body)
	}
}

// A client's Dispatch-Timeout bounds its dispatch: an activity the client
// gave up on does not go on holding a worker. A bad one is a bad request.
func TestClientDispatchTimeout(t *testing.T) {
	b := startBroker(t)
	d := startNode(t, simulated, b, service.Options{})
	msg := nats.NewMsg("aion.dispatch.prod.slow")
	msg.Header.Set(protocol.HeaderDispatchTimeout, "30ms")
	msg.Data = []byte(activity)
	resp, err := connect(t, b).RequestMsg(msg, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(resp.Data), `"kind":"timeout"`) || !strings.Contains(string(resp.Data), "the client's Dispatch-Timeout") {
		t.Fatalf("answer %s, want a timeout naming the client's Dispatch-Timeout", resp.Data)
	}
	ch, _ := engine.DispatchChannel("prod", "slow")
	waitFor(t, "s1 to be free again", func() bool {
		c, _ := d.node.Channel(context.Background(), ch)
		return len(c.Workers) == 1 && c.Workers[0].InFlight == 0
	})

	req, err := http.NewRequest(http.MethodPost, d.http.URL+"/v1/channels/prod/ok/dispatch", strings.NewReader(activity))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(protocol.HeaderDispatchTimeout, "soon")
	hresp, err := d.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(hresp.Body)
	hresp.Body.Close()
	if hresp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `header Dispatch-Timeout \"soon\"`) {
		t.Fatalf("a bad Dispatch-Timeout: %d %s", hresp.StatusCode, body)
	}
}

// TestChannelsShowWhatWasObserved: GET /v1/channels/{ns}/{queue} shows each
// worker's observed figures, 0 before its first answer, then its latency
// and error rate as routers see them.
func TestChannelsShowWhatWasObserved(t *testing.T) {
	d := startNode(t, simulated, nil, service.Options{})
	get := func(queue string) map[string]any {
		t.Helper()
		resp, err := d.http.Client().Get(d.http.URL + "/v1/channels/prod/" + queue)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var ch struct {
			Workers []map[string]any `json:"workers"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&ch); err != nil || len(ch.Workers) != 1 {
			t.Fatalf("channel %s: %+v, %v", queue, ch, err)
		}
		return ch.Workers[0]
	}
	w := get("ok")
	for _, k := range []string{"latency_ewma", "latency_peak_ewma", "error_rate", "exits"} {
		if v, ok := w[k]; !ok || v != 0.0 {
			t.Errorf("before any answer, %s = %v (present %v); want 0", k, v, ok)
		}
	}
	d.post(t, "prod/ok", "application/json", activity)
	if w := get("ok"); !(w["latency_ewma"].(float64) > 0) || w["error_rate"] != 0.0 {
		t.Errorf("after a completed activity: %v", w)
	}
	d.post(t, "prod/fail", "application/json", activity)
	if w := get("fail"); w["error_rate"] != 1.0 {
		t.Errorf("after a failed activity: %v", w)
	}
}
