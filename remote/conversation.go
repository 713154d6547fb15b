package remote

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
)

// recentCloses is how many closed conversation ids a transport remembers,
// to tell a late ack or response from one for a conversation it never
// held.
const recentCloses = 4096

// Open implements [engine.ConversationFactory].
func (t *Transport) Open(_ context.Context, _ string, ch engine.ChannelName, id string) (engine.Conversation, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("open conversation %s on %s: transport %w", id, ch.Short(), errClosed)
	}
	return &conversation{t: t, id: id, ch: ch}, nil
}

// conversation is one dispatch conversation with remote workers. Its
// fields are guarded by Transport.mu.
type conversation struct {
	t      *Transport
	id     string
	ch     engine.ChannelName
	cur    *attempt // the current attempt, from Link
	closed bool
}

// attempt is one attempt of a conversation: the worker linked, the slot
// taken, the request sent and what came back. Fields after the channels
// are guarded by Transport.mu.
type attempt struct {
	c *conversation
	w *rworker
	n int // the attempt number, once sent

	acked    chan protocol.Ack // the ack, once
	answered chan struct{}     // closed when the response arrived
	lost     chan struct{}     // closed when the request will get no answer (no responders, no ack)

	token    string    // the reply subject's token while the request is out
	sentAt   time.Time // when the request left
	observed bool      // its answer, exit or abandonment is in w's figures
	slot     bool      // it holds one of w's slots, as this node counts them
	sent     bool
	gotAck   bool
	rejected bool
	result   engine.ActivityResult
	done     bool // answered, lost or rejected
	lostMsg  string
}

// Link implements [engine.Conversation]: it ends the previous attempt, if
// any, and takes one of the worker's free slots as this node sees them; a
// worker with none, or one that deregistered since the snapshot, fails
// with an error wrapping [engine.ErrWorkerFull]. Linking a worker that
// exited succeeds without a slot; Receive then reports the exit.
func (c *conversation) Link(_ context.Context, ew engine.Worker) error {
	w, ok := ew.Participant.(*rworker)
	if !ok || w == nil {
		return fmt.Errorf("conversation %s: worker %s is not a remote worker (participant %T)", c.id, ew.ID(), ew.Participant)
	}
	t := c.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.closed {
		return fmt.Errorf("conversation %s: %w", c.id, errClosed)
	}
	if c.cur != nil {
		t.end(c.cur) // its answer or exit was seen: nothing to cancel
		c.cur = nil
	}
	a := &attempt{c: c, w: w, acked: make(chan protocol.Ack, 1), answered: make(chan struct{}), lost: make(chan struct{})}
	switch v := w.view(); {
	case w.gone:
	case w.left:
		return fmt.Errorf("worker %s left channel %s: %w", w.id, c.ch.Short(), engine.ErrWorkerFull)
	case !v.HasCapacity():
		return fmt.Errorf("worker %s: %d of %d slots in flight: %w", w.id, v.InFlight, v.MaxInFlight, engine.ErrWorkerFull)
	default:
		w.reserved++
		a.slot = true
	}
	c.cur = a
	return nil
}

// end ends attempt a: it frees its slot (a capacity change, if its worker
// still runs) and forgets its reply token. It reports whether the worker
// may still run the activity, so that a cancel is due. t.mu is held.
func (t *Transport) end(a *attempt) (running bool) {
	if a.slot {
		a.slot = false
		a.w.reserved--
		if !a.w.gone {
			t.notifyWorker(a.w)
		}
		t.dropLeft(a.w) // if it deregistered, and this was its last
	}
	if a.token != "" {
		delete(t.pending, a.token)
		a.token = ""
	}
	return a.sent && !a.done && !a.w.gone
}

// Send implements [engine.Conversation]: it publishes the request to the
// linked worker and waits for its ack. Accepted or deferred, it returns
// nil; rejected, an error wrapping [engine.ErrNotStarted], the slot freed
// and the worker seen as full until it reports again. A worker that exits
// first, or that no subscription of which takes the request, or that does
// not ack within the ack timeout, is an exit that Receive reports.
func (c *conversation) Send(ctx context.Context, msg engine.DispatchRequest) error {
	t := c.t
	t.mu.Lock()
	a := c.cur
	switch {
	case c.closed:
		t.mu.Unlock()
		return fmt.Errorf("conversation %s: %w", c.id, errClosed)
	case a == nil:
		t.mu.Unlock()
		return fmt.Errorf("conversation %s: send before link", c.id)
	case a.sent:
		t.mu.Unlock()
		return fmt.Errorf("conversation %s: worker %s already has its request", c.id, a.w.id)
	}
	a.sent, a.n = true, msg.Attempt
	a.sentAt = t.clock.Now()
	w := a.w
	if w.gone {
		t.mu.Unlock()
		return nil // Receive reports the exit, which counts as the worker's
	}
	if !t.nc.IsConnected() {
		// A request published now would wait in the client's reconnect
		// buffer: after the ack timeout the attempt would count as an
		// exit and be routed again, and the buffered request would still
		// reach the worker when the connection is back. Not started: the
		// activity waits in the backlog, which sees every worker full
		// until the connection is back (see Workers).
		a.done = true
		t.end(a)
		t.mu.Unlock()
		return fmt.Errorf("conversation %s: request to worker %s: node connection %s: %w", c.id, w.id,
			strings.ToLower(t.nc.Status().String()), engine.ErrNotStarted)
	}
	// Random, not guessable: a client of the account cannot answer for
	// another conversation by guessing its reply subject.
	a.token = rand.Text()
	t.pending[a.token] = a
	reply := t.inbox + "." + a.token
	t.mu.Unlock()

	req := &protocol.Request{Version: protocol.Version, WorkerID: w.id, Instance: w.instance, ConversationID: c.id, Attempt: msg.Attempt,
		Activity: protocol.ActivityOf(msg.Request)}
	m, err := protocol.NewMsg(protocol.RequestSubject(w.id), req)
	if err == nil {
		m.Reply = reply
		err = t.nc.PublishMsg(m)
	}
	if err != nil {
		t.mu.Lock()
		a.done = true
		t.end(a)
		t.mu.Unlock()
		return fmt.Errorf("conversation %s: request to worker %s: %w", c.id, w.id, err)
	}
	t.stats.requests.Add(1)
	timer := time.NewTimer(t.ackTimeout)
	defer timer.Stop()
	select {
	case ack := <-a.acked:
		if ack.Status == protocol.AckRejected {
			return fmt.Errorf("worker %s rejected conversation %s attempt %d: %s: %w", w.id, c.id, a.n, ack.Reason, engine.ErrNotStarted)
		}
		return nil
	case <-a.answered:
		return nil
	case <-a.lost:
		return nil
	case <-w.done:
		return nil
	case <-timer.C:
		t.stats.ackTimeouts.Add(1)
		t.mu.Lock()
		cancel := t.lose(a, fmt.Sprintf("worker %s: no ack within %s", w.id, t.ackTimeout))
		t.mu.Unlock()
		t.cancel(cancel)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("conversation %s: waiting for the ack of worker %s: %w", c.id, w.id, ctx.Err())
	case <-t.done:
		return fmt.Errorf("conversation %s: transport %w", c.id, errClosed)
	}
}

// lose ends a's request without an answer: for its conversation, its
// worker exited. The request may still reach the worker, or run there:
// unless the worker is gone, lose returns the cancel that the caller
// publishes, with [Transport.cancel], once it released t.mu; nil
// otherwise. t.mu is held.
func (t *Transport) lose(a *attempt, msg string) *cancelMsg {
	if a.done {
		return nil
	}
	a.done, a.lostMsg = true, msg
	t.end(a)
	t.observeExit(a)
	close(a.lost)
	t.log.Warn("request lost", "conversation", a.c.id, "attempt", a.n, "worker", a.w.id, "reason", msg)
	if a.w.gone {
		return nil
	}
	return &cancelMsg{subject: protocol.CancelSubject(a.w.id), m: &protocol.Cancel{Version: protocol.Version, WorkerID: a.w.id,
		Instance: a.w.instance, ConversationID: a.c.id, Attempt: a.n, Reason: "request lost: " + msg}}
}

// observeExit records, once, that a's worker left it unanswered, if its
// request went out. t.mu is held.
func (t *Transport) observeExit(a *attempt) {
	if a.observed || a.sentAt.IsZero() {
		return
	}
	a.observed = true
	a.w.healthOn(a.c.ch).Exited(t.clock.Now())
}

// cancelMsg is a cancel to publish once t.mu is released.
type cancelMsg struct {
	subject string
	m       *protocol.Cancel
}

// cancel publishes c, if not nil. t.mu is not held.
func (t *Transport) cancel(c *cancelMsg) {
	if c == nil {
		return
	}
	if err := t.publish(c.subject, c.m); err != nil {
		t.log.Warn("could not cancel an activity", "conversation", c.m.ConversationID, "worker", c.m.WorkerID, "error", err)
		return
	}
	t.stats.cancels.Add(1)
}

// Receive implements [engine.Conversation]: the worker's response, or its
// exit (its connection closed, its heartbeat stopped, or the request got
// no answer).
func (c *conversation) Receive(ctx context.Context) (engine.Event, error) {
	t := c.t
	t.mu.Lock()
	a := c.cur
	switch {
	case c.closed:
		t.mu.Unlock()
		return engine.Event{}, fmt.Errorf("conversation %s: %w", c.id, errClosed)
	case a == nil || !a.sent:
		t.mu.Unlock()
		return engine.Event{}, fmt.Errorf("conversation %s: receive before send", c.id)
	}
	t.mu.Unlock()
	select {
	case <-a.answered:
		return c.answer(a), nil
	case <-a.lost:
		return engine.Event{Kind: engine.EventWorkerExited, WorkerID: a.w.id, Attempt: a.n, Message: a.lostMsg}, nil
	case <-a.w.done:
		select {
		case <-a.answered: // an answer that came before the exit still counts
			return c.answer(a), nil
		default:
		}
		t.mu.Lock()
		t.end(a)
		t.observeExit(a)
		msg := a.w.exitMsg
		t.mu.Unlock()
		return engine.Event{Kind: engine.EventWorkerExited, WorkerID: a.w.id, Attempt: a.n, Message: msg}, nil
	case <-ctx.Done():
		return engine.Event{}, fmt.Errorf("conversation %s: waiting for worker %s: %w", c.id, a.w.id, ctx.Err())
	case <-t.done:
		return engine.Event{}, fmt.Errorf("conversation %s: transport %w", c.id, errClosed)
	}
}

func (c *conversation) answer(a *attempt) engine.Event {
	c.t.mu.Lock()
	defer c.t.mu.Unlock()
	return engine.Event{Kind: engine.EventResponse, WorkerID: a.w.id, Attempt: a.n, Result: a.result}
}

// Close implements [engine.Conversation]: it frees the slot and, if the
// worker may still run the activity (a timeout, a cancellation), tells it
// that dispatch no longer waits for it. A second Close is an error.
func (c *conversation) Close() error {
	t := c.t
	t.mu.Lock()
	if c.closed {
		t.mu.Unlock()
		return fmt.Errorf("conversation %s: %w", c.id, errClosed)
	}
	c.closed = true
	a := c.cur
	running := a != nil && t.end(a)
	switch {
	case running && !a.observed:
		// Dispatch stops waiting for it (a timeout, or the workflow gave
		// up): how long it ran is a lower bound of the worker's latency.
		a.observed = true
		now := t.clock.Now()
		a.w.healthOn(c.ch).Abandoned(now, now.Sub(a.sentAt))
	case a != nil && a.sent && !a.done && a.w.gone:
		t.observeExit(a) // it exited before answering, and no Receive saw it
	}
	if a != nil {
		a.done = true
	}
	t.remember(c.id)
	t.mu.Unlock()
	if running {
		err := t.publish(protocol.CancelSubject(a.w.id), &protocol.Cancel{Version: protocol.Version, WorkerID: a.w.id,
			Instance: a.w.instance, ConversationID: c.id, Attempt: a.n, Reason: "conversation closed"})
		if err != nil {
			t.log.Warn("could not cancel an activity", "conversation", c.id, "worker", a.w.id, "error", err)
		} else {
			t.stats.cancels.Add(1)
		}
	}
	return nil
}

// remember keeps id among the recently closed conversations. t.mu is held.
func (t *Transport) remember(id string) {
	if len(t.ring) >= recentCloses {
		delete(t.recent, t.ring[0])
		t.ring = t.ring[1:]
	}
	t.ring = append(t.ring, id)
	t.recent[id] = true
}

// onInbox handles the acks and responses of this node's requests, and
// its own exit markers, in the order they arrive (one subscription: one
// goroutine).
func (t *Transport) onInbox(msg *nats.Msg) {
	if h := t.hooks.Load(); h != nil && h.inbox != nil {
		h.inbox(msg.Subject)
	}
	token := strings.TrimPrefix(msg.Subject, t.inbox+".")
	if tok, ok := strings.CutPrefix(token, exitMarker+"."); ok {
		t.onExitMarker(tok)
		return
	}
	if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" {
		// No responders: no subscription of the worker took the request.
		var cancel *cancelMsg
		t.mu.Lock()
		if a := t.pending[token]; a != nil {
			t.stats.noResponders.Add(1)
			cancel = t.lose(a, fmt.Sprintf("worker %s: no subscription takes its requests", a.w.id))
		}
		t.mu.Unlock()
		t.cancel(cancel)
		return
	}
	switch ct := protocol.ContentTypeOf(msg); {
	case ct == protocol.ContentTypeAck || strings.HasPrefix(ct, protocol.ContentTypeAck+";"):
		var ack protocol.Ack
		if t.decode(msg, &ack) {
			t.onAck(msg, token, ack)
		}
	default:
		var r protocol.Response // a wrong content type is refused as a response's
		if t.decode(msg, &r) {
			t.onResponse(msg, token, r)
		}
	}
}

// match finds the attempt a message answers, or refuses the message.
// t.mu is held.
func (t *Transport) match(msg *nats.Msg, token, kind, conv, worker string, n int) *attempt {
	t.heard(worker)
	a := t.pending[token]
	switch {
	case a == nil && t.recent[conv]:
		t.stats.afterClose.Add(1)
		t.log.Warn("refused an "+kind+" for a closed conversation", "subject", msg.Subject, "conversation", conv, "worker", worker)
		return nil
	case a == nil:
		t.stats.unknownConversation.Add(1)
		t.log.Warn("refused an "+kind+" for a conversation this node does not hold", "subject", msg.Subject,
			"conversation", conv, "worker", worker)
		return nil
	case a.c.id != conv || a.n != n || a.w.id != worker:
		t.stats.stale.Add(1)
		t.log.Warn("refused an "+kind+" for another attempt", "subject", msg.Subject, "conversation", conv, "attempt", n,
			"worker", worker, "want_conversation", a.c.id, "want_attempt", a.n, "want_worker", a.w.id)
		return nil
	}
	return a
}

func (t *Transport) onAck(msg *nats.Msg, token string, ack protocol.Ack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.match(msg, token, "ack", ack.ConversationID, ack.WorkerID, ack.Attempt)
	if a == nil {
		if w := t.workers[ack.WorkerID]; w != nil && !w.gone {
			t.report(w, *ack.State) // its load is news all the same
		}
		return
	}
	if a.gotAck {
		t.stats.stale.Add(1)
		t.log.Warn("refused a second ack", "conversation", a.c.id, "attempt", a.n, "worker", a.w.id)
		return
	}
	a.gotAck = true
	t.report(a.w, *ack.State)
	switch ack.Status {
	case protocol.AckAccepted:
		t.stats.accepted.Add(1)
	case protocol.AckDeferred:
		t.stats.deferred.Add(1)
	case protocol.AckRejected:
		t.stats.rejected.Add(1)
		a.rejected, a.done = true, true
		// Full (or leaving) as far as this node knows, until it reports
		// a newer state: the activity does not bounce back to it. A newer
		// report that overtook the ack stands.
		if a.w.reported.Seq <= ack.State.Seq {
			a.w.blocked = true
		}
		t.end(a)
	}
	a.acked <- ack // buffered for the one ack
}

func (t *Transport) onResponse(msg *nats.Msg, token string, r protocol.Response) {
	res, _ := r.Result.Engine() // checked when decoded
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.match(msg, token, "response", r.ConversationID, r.WorkerID, r.Attempt)
	if a == nil {
		if w := t.workers[r.WorkerID]; w != nil && !w.gone {
			t.report(w, *r.State)
		}
		return
	}
	if a.done {
		t.stats.stale.Add(1)
		t.log.Warn("refused a response to a request that had ended", "conversation", a.c.id, "attempt", a.n, "worker", a.w.id)
		return
	}
	t.stats.responses.Add(1)
	a.done, a.result = true, res
	if !a.observed {
		// In the worker's figures before anyone sees the answer.
		a.observed = true
		now := t.clock.Now()
		a.w.healthOn(a.c.ch).Answered(now, now.Sub(a.sentAt), res.Status == engine.StatusFailed)
	}
	// The slot frees before the answer is seen, so that whoever reads the
	// answer sees the worker's load without it.
	t.end(a)
	t.report(a.w, *r.State)
	close(a.answered)
}
