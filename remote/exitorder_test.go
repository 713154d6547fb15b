package remote_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
	"github.com/aion-dispatch/dispatch/remote"
)

// sentRequest links a conversation to worker p, the only one, sends it a
// request, and has p accept it: p's reply subject and the request.
func sentRequest(t *testing.T, e *env, p *peer) (engine.Conversation, string, protocol.Request) {
	t.Helper()
	e.waitFor(t, "worker p", func() bool { return slices.Contains(e.live(t), "p") })
	ws, err := e.t.Workers(t.Context(), channel, engine.ActivityRequest{})
	if err != nil || len(ws) != 1 {
		t.Fatalf("workers %+v, %v", ws, err)
	}
	conv, err := e.t.Open(t.Context(), "wf", channel, "c1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conv.Close() })
	if err := conv.Link(t.Context(), ws[0]); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		sent <- conv.Send(context.Background(), engine.DispatchRequest{ConversationID: "c1", Attempt: 1, Request: request("wf")})
	}()
	m, r := p.request()
	p.send(m.Reply, &protocol.Ack{Version: 1, WorkerID: "p", ConversationID: r.ConversationID, Attempt: r.Attempt,
		Status: protocol.AckAccepted, State: state(1, 1)})
	if err := <-sent; err != nil {
		t.Fatalf("send: %v", err)
	}
	return conv, m.Reply, r
}

// wait waits for c, or fails the test.
func wait[T any](t *testing.T, what string, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(guard):
		t.Fatalf("timed out waiting for %s", what)
	}
	panic("unreachable")
}

// A worker's last response and its disconnect advisory reach the node on
// two connections, in either order. Here the advisory is handled first
// (the inbox is held with the response in it): the worker's exit still
// comes after its response, which is delivered, not refused.
func TestExitComesAfterTheLastResponse(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := newPeer(t, e, "p", "i1")
	conv, reply, r := sentRequest(t, e, p)

	held, advisories, release := remote.HoldInbox(e.t)
	defer release()
	p.send(reply, &protocol.Response{Version: 1, WorkerID: "p", ConversationID: r.ConversationID, Attempt: r.Attempt,
		Result: protocol.ResultOf(engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte("ok")})), State: state(2, 0)})
	if got := wait(t, "the response to reach the inbox", held); got != reply {
		t.Fatalf("held %s, want the response on %s", got, reply)
	}
	p.nc.Close()
	wait(t, "the disconnect advisory to be handled", advisories)
	exited := remote.Exited(e.t, "p")
	select {
	case <-exited:
		t.Fatal("worker p exited before its response, ahead in the inbox, was handled")
	default:
	}
	release()

	ev, err := conv.Receive(t.Context())
	if err != nil || ev.Kind != engine.EventResponse || string(ev.Result.Output.Data) != "ok" {
		t.Fatalf("receive: %+v, %v; want the response", ev, err)
	}
	wait(t, "worker p to exit", exited)
	if s := e.t.Stats(); s.Responses != 1 || s.Exits != 1 || s.Refused() != 0 {
		t.Fatalf("stats %+v, want one response, one exit, nothing refused", s)
	}
}

// An exit marker the node did not send (a worker's forgery) makes no
// exit; nor does it stop the real one.
func TestForgedExitMarkerIsIgnored(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := newPeer(t, e, "p", "i1")
	conv, reply, r := sentRequest(t, e, p)
	p.send(protocol.InboxSubject(e.t.NodeID())+".exit.FORGED", &protocol.Hello{Version: 1, NodeID: "x"})
	// The response, behind the forgery in the inbox, says when it was handled.
	p.send(reply, &protocol.Response{Version: 1, WorkerID: "p", ConversationID: r.ConversationID, Attempt: r.Attempt,
		Result: protocol.ResultOf(engine.Completed(engine.Payload{})), State: state(2, 0)})
	if ev, err := conv.Receive(t.Context()); err != nil || ev.Kind != engine.EventResponse {
		t.Fatalf("receive: %+v, %v; want the response", ev, err)
	}
	exited := remote.Exited(e.t, "p")
	select {
	case <-exited:
		t.Fatal("a forged exit marker made worker p exit")
	default:
	}
	p.nc.Close()
	wait(t, "worker p to exit", exited)
	if s := e.t.Stats(); s.Exits != 1 || s.Refused() != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// When the node's own connection closes while an exit waits for its
// marker, the exit happens then: nothing waits for a marker that cannot
// come back.
func TestExitWhenTheNodeConnectionCloses(t *testing.T) {
	e := newEnv(t, envOpts{})
	p := newPeer(t, e, "p", "i1")
	conv, _, _ := sentRequest(t, e, p)
	// Something other than the marker is held in the inbox: a stray reply.
	held, advisories, release := remote.HoldInbox(e.t)
	defer release()
	p.send(protocol.InboxSubject(e.t.NodeID())+".stray", &protocol.Hello{Version: 1, NodeID: "x"})
	wait(t, "the stray message to reach the inbox", held)
	p.nc.Close()
	wait(t, "the disconnect advisory to be handled", advisories)
	e.nc.Close()
	wait(t, "worker p to exit", remote.Exited(e.t, "p"))
	release()
	if ev, err := conv.Receive(t.Context()); err != nil || ev.Kind != engine.EventWorkerExited {
		t.Fatalf("receive: %+v, %v; want the exit", ev, err)
	}
}
