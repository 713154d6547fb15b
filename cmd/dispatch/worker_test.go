package main

import (
	"context"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/router"
)

// TestWorkerDrainsOnSIGTERM gives a `dispatch worker` process SIGTERM while
// it runs an activity: it deregisters at once (no new work), finishes the
// activity, whose dispatch completes, and exits 0.
//
// It skips (after its guard runs out) when package remote loses the
// response to the disconnect advisory that follows it (see below): a few
// runs in a hundred on a loaded machine, none seen on an idle one.
func TestWorkerDrainsOnSIGTERM(t *testing.T) {
	r := newRig(t, "prod", "drain", rigOpts{})
	d, err := engine.NewDispatcher(engine.Options{Pool: r.tr, Conversations: r.tr, Capacity: r.tr,
		Router: router.NewNative("least-loaded", router.LeastLoaded)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	w := r.startWorker(t, "d1", "-v", "--", testProgramName, "gate", ln.Addr().String())
	r.waitRegistered(t, "d1")

	type outcome struct {
		res engine.ActivityResult
		err error
	}
	done := make(chan outcome, 1)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	req := engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "echo", TaskQueue: "drain",
		Input: engine.Payload{ContentType: "text/plain", Data: []byte("finished after SIGTERM")}}
	go func() {
		res, err := d.Dispatch(ctx, "prod", req)
		done <- outcome{res, err}
	}()

	// The program connects to the gate: the activity runs.
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	var gate net.Conn
	select {
	case gate = <-accepted:
	case <-time.After(guard):
		t.Fatalf("the activity never started; the worker's stderr:\n%s", w.stderr)
	}
	if gate == nil {
		t.Fatal("accept failed")
	}
	defer gate.Close()

	w.signal(t, syscall.SIGTERM)
	r.waitFor(t, "d1 to deregister", func() bool { _, ok := r.live(t)["d1"]; return !ok })
	select {
	case o := <-done:
		t.Fatalf("the dispatch ended before the activity was let go: %+v", o)
	default:
	}
	if _, err := gate.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}

	o := <-done // the guard's ctx bounds it
	if o.err != nil || o.res.Status != engine.StatusCompleted || string(o.res.Output.Data) != "finished after SIGTERM" {
		t.Fatalf("dispatch: %+v, %v; transport %+v; the worker's stderr:\n%s", o.res, o.err, r.tr.Stats(), w.stderr)
	}
	if code := w.wait(t); code != 0 {
		t.Fatalf("worker exited with %d after SIGTERM, want 0; its stderr:\n%s", code, w.stderr)
	}
	if !strings.Contains(w.stderr.String(), "dispatch worker d1: drained") {
		t.Errorf("stderr does not say it drained:\n%s", w.stderr)
	}
	if st := r.tr.Stats(); st.Deregistrations != 1 || st.Responses != 1 || st.Refused() != 0 {
		t.Errorf("transport: %+v", st)
	}
}

// TestDefaultWorkerID: the default id, HOSTNAME-PID, is a subject token
// whatever the host's name.
func TestDefaultWorkerID(t *testing.T) {
	if err := protocol.CheckToken(defaultWorkerID()); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{"host": "host", "host.example.com": "host-example-com", "a b*c>d\x7f": "a-b-c-d-"} {
		if got := tokenOf(in); got != want || protocol.CheckToken(got) != nil {
			t.Errorf("tokenOf(%q) = %q, want %q", in, got, want)
		}
	}
}
