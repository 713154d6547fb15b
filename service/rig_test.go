package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/aion-dispatch/dispatch/broker"
	"github.com/aion-dispatch/dispatch/config"
	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/node"
	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/remote"
	"github.com/aion-dispatch/dispatch/service"
	"github.com/aion-dispatch/dispatch/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startBroker starts an embedded NATS server on a free loopback port.
func startBroker(t testing.TB) *broker.Broker {
	t.Helper()
	b, err := broker.Start(t.Context(), broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	return b
}

func connect(t testing.TB, b *broker.Broker) *nats.Conn {
	t.Helper()
	nc, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// dispatchNode is a node serving a config, with remote workers over b
// when b is set, and its front door.
type dispatchNode struct {
	node *node.Node
	svc  *service.Service
	http *httptest.Server
	nc   *nats.Conn // the front door's connection, when b was set
}

// startNode starts a node for yaml (its workers simulated, besides any
// that register over b) and its service, over HTTP on loopback and, with
// b, over NATS.
func startNode(t testing.TB, yaml string, b *broker.Broker, opts service.Options) *dispatchNode {
	t.Helper()
	cfg, err := config.Parse("conf/dispatch.yaml", []byte(yaml), config.Options{ReadFile: func(name string) ([]byte, error) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}})
	if err != nil {
		t.Fatal(err)
	}
	nopts := node.Options{Seed: 1, Logger: quiet}
	if b != nil {
		var chs []engine.ChannelName
		for _, ch := range cfg.Channels {
			chs = append(chs, ch.Name)
		}
		sys, err := b.ConnectSystem()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sys.Close)
		tr, err := remote.New(t.Context(), remote.Options{Conn: connect(t, b), Advisories: sys, Channels: chs, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close(context.Background()) })
		nopts.Remote = tr
	}
	n, err := node.New(cfg, nopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	opts.Node, opts.Logger = n, quiet
	svc, err := service.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	d := &dispatchNode{node: n, svc: svc}
	d.http = httptest.NewServer(svc.Handler())
	t.Cleanup(d.http.Close)
	if b != nil {
		d.nc = connect(t, b)
		if err := svc.ServeNATS(t.Context(), d.nc); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // whatever a test left running is abandoned at once
		_ = svc.Drain(ctx)
	})
	return d
}

// post sends a dispatch over HTTP and returns the status and answer.
func (d *dispatchNode) post(t *testing.T, channel, contentType, body string) (int, protocol.Answer) {
	t.Helper()
	status, a, err := d.send(channel, contentType, body)
	if err != nil {
		t.Fatal(err)
	}
	return status, a
}

// send is post for a goroutine of the test's: it returns what went wrong.
func (d *dispatchNode) send(channel, contentType, body string) (int, protocol.Answer, error) {
	req, err := http.NewRequest(http.MethodPost, d.http.URL+"/v1/channels/"+channel+"/dispatch", bytes.NewBufferString(body))
	if err != nil {
		return 0, protocol.Answer{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := d.http.Client().Do(req)
	if err != nil {
		return 0, protocol.Answer{}, err
	}
	defer resp.Body.Close()
	var a protocol.Answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return 0, protocol.Answer{}, fmt.Errorf("answer of %s: %w", channel, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return 0, protocol.Answer{}, fmt.Errorf("answer's content type %q", ct)
	}
	return resp.StatusCode, a, nil
}

// request sends a dispatch over NATS and returns the answer.
func request(nc *nats.Conn, subject, contentType, body string) (protocol.Answer, error) {
	msg := nats.NewMsg(subject)
	if contentType != "" {
		msg.Header.Set(protocol.HeaderContentType, contentType)
	}
	msg.Data = []byte(body)
	resp, err := nc.RequestMsg(msg, 5*time.Second)
	if err != nil {
		return protocol.Answer{}, err
	}
	if ct := protocol.ContentTypeOf(resp); ct != protocol.ContentTypeResponse {
		return protocol.Answer{}, fmt.Errorf("reply's content type %q", ct)
	}
	var a protocol.Answer
	err = json.Unmarshal(resp.Data, &a)
	return a, err
}

// heldWorker is a real worker, over NATS, whose activities wait until the
// test releases them; it counts how many it holds at once.
type heldWorker struct {
	started chan string   // each activity's workflow id, as it starts
	release chan struct{} // closed: every activity answers
	now     atomic.Int32
	max     atomic.Int32
	mu      sync.Mutex
	ran     map[string]int
}

func newHeldWorker() *heldWorker {
	return &heldWorker{started: make(chan string, 1024), release: make(chan struct{}), ran: map[string]int{}}
}

func (h *heldWorker) handle(ctx context.Context, req engine.ActivityRequest) (engine.ActivityResult, error) {
	n := h.now.Add(1)
	defer h.now.Add(-1)
	for {
		m := h.max.Load()
		if n <= m || h.max.CompareAndSwap(m, n) {
			break
		}
	}
	h.mu.Lock()
	h.ran[req.WorkflowID]++
	h.mu.Unlock()
	h.started <- req.WorkflowID
	select {
	case <-h.release:
	case <-ctx.Done():
		return engine.ActivityResult{}, ctx.Err()
	}
	return engine.Completed(req.Input), nil
}

// runWorker runs a worker library worker on its own connection.
func runWorker(t testing.TB, b *broker.Broker, opts worker.Options, h worker.Handler) {
	t.Helper()
	w, err := worker.New(connect(t, b), opts, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitFor polls cond; the deadline only guards a hang.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// receive waits for one value from c; the deadline only guards a hang.
func receive[T any](t *testing.T, what string, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}
