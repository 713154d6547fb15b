package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
)

// The NATS side of the front door: every serve node subscribes to
// SubmitSubject in QueueGroup, so a request on a channel's subject reaches
// one node of the group.
const (
	// SubmitSubject matches every channel's subject,
	// aion.dispatch.NAMESPACE.TASK_QUEUE (no subject of the worker
	// protocol has four tokens).
	SubmitSubject = "aion.dispatch.*.*"
	// QueueGroup is the queue group of the serve nodes.
	QueueGroup = "aion.dispatch.serve"
)

// natsSub is one connection's subscription taking dispatches.
type natsSub struct {
	sub    *nats.Subscription
	closed chan struct{} // closed once the subscription is gone, drained or not
}

// drain makes the subscription leave the queue group and hand the
// requests it holds already to the service, as taken; it returns once they
// are handed over, or when ctx ends.
func (n *natsSub) drain(ctx context.Context) error {
	if err := n.sub.Drain(); err != nil && !errors.Is(err, nats.ErrBadSubscription) && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("drain the NATS subscription: %w", err)
	}
	select {
	case <-n.closed:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain the NATS subscription: %w", context.Cause(ctx))
	}
}

// ServeNATS takes dispatches from nc: requests on every channel's subject,
// in the serve nodes' queue group, each answered on its reply subject.
// The body is a protocol.Submission (content type the request content
// type, application/json, or none); the reply a protocol.Answer with the
// response content type. It returns once the server has the
// subscription. [Service.Drain] ends it.
func (s *Service) ServeNATS(ctx context.Context, nc *nats.Conn) error {
	n := &natsSub{closed: make(chan struct{})}
	sub, err := nc.QueueSubscribe(SubmitSubject, QueueGroup, s.onNATS)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", SubmitSubject, err)
	}
	sub.SetClosedHandler(func(string) { close(n.closed) })
	n.sub = sub
	if err := protocol.Flush(ctx, nc); err != nil {
		_ = sub.Unsubscribe()
		return fmt.Errorf("subscribe to %s: %w", SubmitSubject, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		_ = sub.Unsubscribe()
		return errors.New("service: draining")
	}
	s.subs = append(s.subs, n)
	return nil
}

// onNATS takes one request: refused at once when it cannot be read or the
// service drains, else dispatched on a goroutine of its own (the service's
// in-flight count owns it) so that the subscription keeps reading.
func (s *Service) onNATS(msg *nats.Msg) {
	start := time.Now()
	if msg.Reply == "" {
		s.log.Warn("a NATS dispatch request without a reply subject: nobody to answer; use request-reply", "subject", msg.Subject)
		if s.obs != nil {
			s.obs.ObserveDispatch("nats", "", protocol.KindBadRequest, time.Since(start))
		}
		return
	}
	ch, req, err := natsRequest(msg)
	var client time.Duration
	if err == nil && msg.Header != nil {
		client, err = clientTimeout(msg.Header.Get(protocol.HeaderDispatchTimeout))
	}
	if err != nil {
		s.replyRefused(msg, "", protocol.KindBadRequest, err.Error(), start)
		return
	}
	if !s.admit(true) {
		s.replyRefused(msg, s.label(ch), protocol.KindDraining, "the node is draining and takes no new dispatch; send the request again", start)
		return
	}
	go func() {
		defer s.done()
		s.reply(msg, s.dispatch(context.Background(), "nats", ch, req, client))
	}()
}

// natsRequest reads a NATS dispatch request.
func natsRequest(msg *nats.Msg) (engine.ChannelName, engine.ActivityRequest, error) {
	tokens := strings.Split(msg.Subject, ".")
	if len(tokens) != 4 {
		return engine.ChannelName{}, engine.ActivityRequest{}, fmt.Errorf("subject %q is not a channel's (aion.dispatch.NAMESPACE.TASK_QUEUE)", msg.Subject)
	}
	ch, err := engine.DispatchChannel(tokens[2], tokens[3])
	if err != nil {
		return engine.ChannelName{}, engine.ActivityRequest{}, err
	}
	if ct := protocol.ContentTypeOf(msg); !acceptedType(ct) {
		return ch, engine.ActivityRequest{}, fmt.Errorf("content type %q: send %s (or application/json)", ct, protocol.ContentTypeRequest)
	}
	req, err := submission(msg.Data, ch)
	return ch, req, err
}

// replyRefused answers a NATS request that was not taken, and counts it.
func (s *Service) replyRefused(msg *nats.Msg, channel, kind, text string, start time.Time) {
	if s.obs != nil {
		s.obs.ObserveDispatch("nats", channel, kind, time.Since(start))
	}
	s.log.Info("dispatch refused", "transport", "nats", "subject", msg.Subject, "kind", kind, "error", text)
	s.reply(msg, refused(kind, text))
}

// reply sends a on msg's reply subject.
func (s *Service) reply(msg *nats.Msg, a protocol.Answer) {
	body, err := marshal(a)
	if err != nil { // not reached: an answer always marshals
		body = []byte(`{"status":"failed","kind":"internal","error":"the answer could not be encoded"}`)
	}
	out := nats.NewMsg(msg.Reply)
	out.Header.Set(protocol.HeaderContentType, protocol.ContentTypeResponse)
	out.Data = body
	err = msg.RespondMsg(out)
	if errors.Is(err, nats.ErrMaxPayload) {
		// Escaping can make an output grow past what NATS carries: say so
		// rather than leave the client waiting.
		too := refused(protocol.KindInternal, fmt.Sprintf("the answer (%d bytes) is larger than the NATS server carries: the activity %s (conversation %s) but its output cannot be sent back over NATS; send activities with outputs this large over HTTP",
			len(body), a.Status, a.ConversationID))
		too.WorkerID, too.ConversationID, too.Attempts = a.WorkerID, a.ConversationID, a.Attempts
		out.Data, _ = marshal(too)
		err = msg.RespondMsg(out)
	}
	if err != nil {
		s.log.Warn("could not answer a NATS dispatch request", "subject", msg.Subject, "conversation_id", a.ConversationID, "error", err)
	}
}
