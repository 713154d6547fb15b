package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/protocol"
)

// served is a `dispatch serve` run in the test process (its real command
// code, with the test's signals), on free loopback ports.
type served struct {
	serving
	signals chan<- os.Signal // serve's own signal channel
	done    chan struct{}    // closed when it has returned
	code    int              // its exit code, once done is closed
	stderr  *lockedBuffer
	client  *http.Client
}

// startServe runs `dispatch serve -c cfg ARGS...` until the test ends
// (or the test signals it) and returns once it serves.
func startServe(t *testing.T, cfg string, args ...string) *served {
	t.Helper()
	s := &served{done: make(chan struct{}), stderr: &lockedBuffer{}}
	notified := make(chan chan<- os.Signal, 1)
	up := make(chan serving, 1)
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: s.stderr,
		notify:     func(c chan<- os.Signal, _ ...os.Signal) { notified <- c },
		stopNotify: func(chan<- os.Signal) {},
		serving:    func(sv serving) { up <- sv }}
	argv := append([]string{"serve", "-c", cfg, "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--log-level", "warn"}, args...)
	go func() { s.code = runEnv(argv, e); close(s.done) }()
	s.signals = receiveWithin(t, "serve to take its signals", notified)
	select {
	case s.serving = <-up:
	case <-s.done:
		t.Fatalf("serve exited with %d before serving:\n%s", s.code, s.stderr)
	case <-time.After(guard):
		t.Fatalf("serve did not start:\n%s", s.stderr)
	}
	s.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(func() {
		select {
		case <-s.done:
			return
		default:
		}
		s.signals <- syscall.SIGTERM
		s.signals <- syscall.SIGTERM // and at once
		<-s.done
	})
	return s
}

// stop sends serve sig and returns its exit code.
func (s *served) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	s.signals <- sig
	receiveWithin(t, "serve to exit", s.done)
	return s.code
}

func receiveWithin[T any](t *testing.T, what string, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(guard):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// postAnswer sends a dispatch over HTTP.
func (s *served) postAnswer(ctx context.Context, channel, body string) (int, protocol.Answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.http+"/v1/channels/"+channel+"/dispatch", strings.NewReader(body))
	if err != nil {
		return 0, protocol.Answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, protocol.Answer{}, err
	}
	defer resp.Body.Close()
	var a protocol.Answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return resp.StatusCode, a, fmt.Errorf("status %d: %w", resp.StatusCode, err)
	}
	return resp.StatusCode, a, nil
}

// natsAnswer sends a dispatch over NATS.
func natsAnswer(nc *nats.Conn, subject, body string) (protocol.Answer, error) {
	msg := nats.NewMsg(subject)
	msg.Header.Set(protocol.HeaderContentType, protocol.ContentTypeRequest)
	msg.Data = []byte(body)
	resp, err := nc.RequestMsg(msg, guard)
	if err != nil {
		return protocol.Answer{}, err
	}
	var a protocol.Answer
	err = json.Unmarshal(resp.Data, &a)
	return a, err
}

// scrape reads /metrics into "name{labels}" → value.
func (s *served) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := s.client.Get(s.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func writeServeConfig(t *testing.T, queue string) (path string, ch engine.ChannelName) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "dispatch.yaml")
	// The script's deadline is not what these tests are about: a generous
	// one keeps a machine busy with other tests from firing it (a 50ms
	// wall-clock deadline counts the time a descheduled call waits).
	cfg := `version: 1
defaults: {script_timeout: 2s}
channels:
  - namespace: prod
    task_queue: ` + queue + `
    routing: {lang: lua, source: "function route(r, c) return dispatch.least_loaded(c) end"}
    workers: []
`
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ch, err := engine.DispatchChannel("prod", queue)
	if err != nil {
		t.Fatal(err)
	}
	return path, ch
}

// awaitWorkers waits until the node serves ch with n workers.
func (s *served) awaitWorkers(t *testing.T, ch engine.ChannelName, n int) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		if c, _ := s.node.Channel(context.Background(), ch); len(c.Workers) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node never had %d workers on %s:\n%s", n, ch.Short(), s.stderr)
		}
		time.Sleep(time.Millisecond)
	}
}

const (
	serveActivities  = 10_000
	serveConcurrency = 64
	serveKillAfter   = 1000
)

// TestServeEndToEnd runs `dispatch serve` with three `dispatch worker`
// processes and submits 10,000 activities to it, half over NATS, half over
// HTTP, 64 at a time; one worker is killed with SIGKILL mid-run while it
// holds eight. Every activity is answered with what it did (its input, or
// the failure the program chose), the metrics agree with the journal, and
// SIGTERM drains the node, which exits 0.
func TestServeEndToEnd(t *testing.T) {
	cfg, ch := writeServeConfig(t, "e2e")
	jpath := filepath.Join(t.TempDir(), "journal.jsonl")
	s := startServe(t, cfg, "--journal", jpath, "--fsync", "never")
	const victimMax = 8
	startWorkerAt(t, s.nats, ch, "w1", "--max-in-flight", "16", "--serve", "--", testProgramName, "serve")
	startWorkerAt(t, s.nats, ch, "w2", "--max-in-flight", "16", "--serve", "--", testProgramName, "serve")
	victim := startWorkerAt(t, s.nats, ch, "w3", "--max-in-flight", strconv.Itoa(victimMax), "--serve", "--",
		testProgramName, "serve", "100")
	s.awaitWorkers(t, ch, 3)
	nc, err := nats.Connect(s.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	var completed atomic.Int64
	var killOnce sync.Once
	killed := make(chan struct{})
	maybeKill := func() {
		if completed.Load() < serveKillAfter {
			return
		}
		c, _ := s.node.Channel(context.Background(), ch)
		for _, w := range c.Workers {
			if w.ID == "w3" && w.InFlight >= victimMax {
				killOnce.Do(func() { _ = victim.cmd.Process.Signal(syscall.SIGKILL); close(killed) })
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*guard)
	defer cancel()
	answers := make([]protocol.Answer, serveActivities)
	errs := make([]error, serveActivities)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range serveConcurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= serveActivities {
					return
				}
				typ := "echo"
				if i%10 == 3 {
					typ = "fail"
				}
				body := fmt.Sprintf(`{"workflow_id": "wf-%d", "activity_type": %q, "input": {"n": %d}}`, i, typ, i)
				if i%4 < 2 {
					answers[i], errs[i] = natsAnswer(nc, ch.String(), body)
				} else {
					var status int
					status, answers[i], errs[i] = s.postAnswer(ctx, ch.Short(), body)
					if errs[i] == nil && status != http.StatusOK {
						errs[i] = fmt.Errorf("status %d", status)
					}
				}
				if errs[i] == nil && answers[i].Status == protocol.StatusCompleted {
					completed.Add(1)
				}
				maybeKill()
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	select {
	case <-killed:
	default:
		t.Fatal("the victim was never killed")
	}
	var failed int
	want := map[string]float64{} // transport outcome → answers
	for i, a := range answers {
		transport := "http"
		if i%4 < 2 {
			transport = "nats"
		}
		outcome := a.Status
		if a.Kind != "" {
			outcome = a.Kind
		}
		want[transport+" "+outcome]++
		switch {
		case errs[i] != nil:
			t.Errorf("activity %d: %v", i, errs[i])
		case i%10 == 3:
			failed++
			if a.Status != protocol.StatusFailed || a.Kind != protocol.KindActivityFailed || a.Error != "asked to fail" {
				t.Errorf("activity %d (fail): %+v", i, a)
			}
		case a.Status != protocol.StatusCompleted || string(a.Output) != fmt.Sprintf(`{"n":%d}`, i):
			t.Errorf("activity %d: %+v, want completed with its input", i, a)
		}
	}
	t.Logf("%d activities in %s (%.0f/s), %d failed by the program", serveActivities, took.Round(time.Millisecond),
		serveActivities/took.Seconds(), failed)

	m := s.scrape(t)
	if code := s.stop(t, syscall.SIGTERM); code != exitOK {
		t.Fatalf("serve exited with %d after SIGTERM:\n%s", code, s.stderr)
	}

	// The metrics count what the journal holds.
	f, err := os.Open(jpath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ops, truncated, err := journal.ReadAll(f)
	if err != nil || truncated != 0 {
		t.Fatalf("read the journal: %v (truncated line %d)", err, truncated)
	}
	closed := map[string]float64{}
	decisions := map[string]float64{}
	var reroutes, exits float64
	for _, op := range ops {
		switch op.Kind {
		case engine.OpConversationClosed:
			closed[op.State.Name.String()]++
		case engine.OpWorkerSelected:
			decisions[op.WorkerID]++
			if op.Attempt > 1 {
				reroutes++
			}
		case engine.OpWorkerExited:
			exits++
		}
	}
	label := `channel="` + ch.Short() + `"`
	for _, c := range []struct {
		metric string
		want   float64
	}{
		{`dispatch_conversations_total{` + label + `,state="completed"}`, closed["activity_completed"]},
		{`dispatch_conversations_total{` + label + `,state="failed"}`, closed["activity_failed"]},
		{`dispatch_decisions_total{` + label + `,worker="w1"}`, decisions["w1"]},
		{`dispatch_decisions_total{` + label + `,worker="w2"}`, decisions["w2"]},
		{`dispatch_decisions_total{` + label + `,worker="w3"}`, decisions["w3"]},
		{`dispatch_reroutes_total{` + label + `}`, reroutes},
		{`dispatch_worker_exits_total{` + label + `}`, exits},
		{`dispatch_duration_seconds_count{` + label + `,outcome="completed",transport="http"}`, want["http completed"]},
		{`dispatch_duration_seconds_count{` + label + `,outcome="completed",transport="nats"}`, want["nats completed"]},
		{`dispatch_duration_seconds_count{` + label + `,outcome="activity_failed",transport="http"}`, want["http activity_failed"]},
		{`dispatch_duration_seconds_count{` + label + `,outcome="activity_failed",transport="nats"}`, want["nats activity_failed"]},
	} {
		if got, ok := m[c.metric]; !ok || got != c.want {
			t.Errorf("%s = %v (present %v), the journal says %v", c.metric, got, ok, c.want)
		}
	}
	// What the node observed of the worker processes that lived: the
	// figures routers saw, as gauges.
	for _, w := range []string{"w1", "w2"} {
		if got := m[`dispatch_worker_latency_ewma_seconds{`+label+`,worker="`+w+`"}`]; !(got > 0) {
			t.Errorf("dispatch_worker_latency_ewma_seconds of %s = %v, want > 0 after it answered", w, got)
		}
		if _, ok := m[`dispatch_worker_error_rate{`+label+`,worker="`+w+`"}`]; !ok {
			t.Errorf("no dispatch_worker_error_rate of %s", w)
		}
	}
	if want["nats activity_failed"] == 0 || want["http activity_failed"] == 0 {
		t.Errorf("answers by transport and outcome %v: want failures over both", want)
	}
	if closed["activity_completed"]+closed["activity_failed"] != serveActivities || exits != victimMax {
		t.Errorf("journal: %v closed, %v exits; want %d closed and %d exits (what the victim held)", closed, exits, serveActivities, victimMax)
	}
	if !bytes.Contains([]byte(s.stderr.String()), []byte("serving 1 channels")) {
		t.Errorf("serve's stderr does not say it serves:\n%s", s.stderr)
	}
}

// TestServeDrainsOnSIGTERM sends SIGTERM to `dispatch serve` while four
// activities run on a worker process (two taken over HTTP, two over NATS):
// new dispatches are refused (HTTP 503 "draining"; over NATS the node has
// left the queue group, so there are no responders), /readyz says 503,
// and the four are answered completed when their activities end; then
// serve exits 0 and the journal has the four conversations, closed.
func TestServeDrainsOnSIGTERM(t *testing.T) {
	cfg, ch := writeServeConfig(t, "gate")
	jpath := filepath.Join(t.TempDir(), "journal.jsonl")
	s := startServe(t, cfg, "--journal", jpath)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	startWorkerAt(t, s.nats, ch, "g1", "--max-in-flight", "8", "--", testProgramName, "gate", ln.Addr().String())
	s.awaitWorkers(t, ch, 1)
	nc, err := nats.Connect(s.nats)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	type answer struct {
		a   protocol.Answer
		err error
	}
	answers := make(chan answer, 4)
	for i := range 4 {
		body := fmt.Sprintf(`{"workflow_id": "wf-%d", "activity_type": "a", "input": {"n": %d}}`, i, i)
		go func() {
			if i%2 == 0 {
				a, err := natsAnswer(nc, ch.String(), body)
				answers <- answer{a, err}
				return
			}
			status, a, err := s.postAnswer(context.Background(), ch.Short(), body)
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("status %d", status)
			}
			answers <- answer{a, err}
		}()
	}
	// Each activity's program connects to the test once it runs.
	var gates []net.Conn
	for range 4 {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		gates = append(gates, c)
	}

	s.signals <- syscall.SIGTERM
	waitUntil(t, "serve to drain", s.service.Draining)
	status, a, err := s.postAnswer(context.Background(), ch.Short(), `{"workflow_id": "late", "activity_type": "a"}`)
	if err != nil || status != http.StatusServiceUnavailable || a.Kind != protocol.KindDraining {
		t.Fatalf("a dispatch during the drain: %d %+v %v, want 503 draining", status, a, err)
	}
	waitUntil(t, "the node to leave the queue group", func() bool {
		_, err := natsAnswer(nc, ch.String(), `{"workflow_id": "late", "activity_type": "a"}`)
		return errors.Is(err, nats.ErrNoResponders)
	})
	resp, err := s.client.Get(s.http + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while draining: %d", resp.StatusCode)
	}
	select {
	case <-s.done:
		t.Fatalf("serve exited (%d) with four dispatches in flight:\n%s", s.code, s.stderr)
	default:
	}
	for _, g := range gates {
		if _, err := g.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		got := receiveWithin(t, "an answer", answers)
		if got.err != nil || got.a.Status != protocol.StatusCompleted || !strings.HasPrefix(string(got.a.Output), `{"n":`) {
			t.Fatalf("answer %+v %v, want completed with its input", got.a, got.err)
		}
	}
	receiveWithin(t, "serve to exit", s.done)
	if s.code != exitOK {
		t.Fatalf("serve exited %d after draining:\n%s", s.code, s.stderr)
	}
	f, err := os.Open(jpath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := journal.Verify(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	if tot := rep.Summary.Total; rep.Problems > 0 || len(rep.Unfinished) > 0 || tot.Conversations != 4 || tot.Completed != 4 {
		t.Fatalf("journal: %d problems, %d unfinished, %+v; want 4 conversations completed", rep.Problems, len(rep.Unfinished), tot)
	}
}

// waitUntil polls cond; the deadline only guards a hang.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A second signal during a drain ends it at once: the activity still
// running is answered "draining", and serve exits 128+signal.
func TestServeSecondSignalExitsAtOnce(t *testing.T) {
	cfg, ch := writeServeConfig(t, "gate")
	s := startServe(t, cfg, "--drain-timeout", "1h")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	startWorkerAt(t, s.nats, ch, "g1", "--", testProgramName, "gate", ln.Addr().String())
	s.awaitWorkers(t, ch, 1)
	answered := make(chan protocol.Answer, 1)
	go func() {
		_, a, err := s.postAnswer(context.Background(), ch.Short(), `{"workflow_id": "wf-1", "activity_type": "a"}`)
		if err != nil {
			a.Error = err.Error()
		}
		answered <- a
	}()
	gate, err := ln.Accept() // the activity runs, and is never let go
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Close()
	s.signals <- syscall.SIGTERM
	waitUntil(t, "serve to drain", s.service.Draining)
	if code := s.stop(t, syscall.SIGINT); code != 128+int(syscall.SIGINT) {
		t.Fatalf("exit %d after a second signal, want %d:\n%s", code, 128+int(syscall.SIGINT), s.stderr)
	}
	if a := receiveWithin(t, "the answer", answered); a.Kind != protocol.KindDraining {
		t.Fatalf("the activity in flight was answered %+v, want kind draining", a)
	}
}

// A channel added to the config file is served once the file is reloaded
// (by its change event, or by the SIGHUP that asks for a rescan, which
// serve says it took), and the reload is counted.
func TestServeReloadsTheConfig(t *testing.T) {
	cfg, _ := writeServeConfig(t, "first")
	s := startServe(t, cfg, "--log-level", "info")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	added := string(data) + `  - namespace: prod
    task_queue: second
    routing: {lang: lua, source: "function route(r, c) return dispatch.least_loaded(c) end"}
    workers: [{id: s1}]
`
	if err := os.WriteFile(cfg, []byte(added), 0o644); err != nil {
		t.Fatal(err)
	}
	s.signals <- syscall.SIGHUP
	waitUntil(t, "the added channel to answer", func() bool {
		status, a, err := s.postAnswer(context.Background(), "prod/second", `{"workflow_id": "wf-1", "activity_type": "a", "input": 1}`)
		return err == nil && status == http.StatusOK && a.WorkerID == "s1"
	})
	if m := s.scrape(t); m[`dispatch_reloads_total{result="applied"}`] < 1 {
		t.Fatalf("reloads applied %v after the channel came in", m[`dispatch_reloads_total{result="applied"}`])
	}
	waitUntil(t, "serve to say it took the SIGHUP", func() bool {
		return strings.Contains(s.stderr.String(), "SIGHUP: rescanning the config and scripts")
	})
}
