// Package service is the front door of a long-running dispatch node
// (`dispatch serve`): it takes activities to dispatch over HTTP
// (POST /v1/channels/{ns}/{queue}/dispatch) and over NATS request-reply on
// each channel's subject (aion.dispatch.NS.QUEUE, in a queue group so that
// several nodes share the load), answers each with a [protocol.Answer],
// shows the channels (GET /v1/channels), health (/healthz, /readyz) and
// metrics, and drains: once [Service.Drain] is called no new dispatch is
// taken and every one taken is answered. docs/operations.md describes it
// for operators.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/node"
	"github.com/aion-dispatch/dispatch/protocol"
)

// Node is what the front door dispatches through and reports on
// (a *node.Node).
type Node interface {
	DispatchOutcome(ctx context.Context, namespace string, req engine.ActivityRequest) (engine.Outcome, error)
	Channels(ctx context.Context) []node.ChannelInfo
	Channel(ctx context.Context, ch engine.ChannelName) (node.ChannelInfo, bool)
	// Serves reports whether ch is configured: a dispatch to another
	// channel is answered unknown_channel without a conversation, so
	// that clients cannot make journal entries and metric series for
	// channels of their choosing.
	Serves(ch engine.ChannelName) bool
}

// Observer is told of every dispatch the front door answers (a
// *metrics.Metrics). channel is "" when the request named no configured
// channel or could not be read.
type Observer interface {
	DispatchStarted()
	DispatchEnded()
	ObserveDispatch(transport, channel, outcome string, took time.Duration)
}

// DefaultDispatchTimeout bounds a dispatch whose request sets no
// schedule_to_close: without a bound, a worker that never answers would
// hold its client, and a drain, for ever.
const DefaultDispatchTimeout = 10 * time.Minute

// Options configure a Service.
type Options struct {
	// Node dispatches; required.
	Node Node
	// Logger gets a line per failed dispatch (info) and per completed one
	// (debug), each with its channel, workflow id and conversation id;
	// nil means slog.Default().
	Logger *slog.Logger
	// Observer, if set, is told of every answered dispatch.
	Observer Observer
	// Metrics, if set, is served at GET /metrics.
	Metrics http.Handler
	// Ready, if set, reports why the node is not ready (config not
	// loaded, NATS not connected); GET /readyz answers 503 with the
	// error, or when the service drains.
	Ready func() error
	// DispatchTimeout bounds a dispatch whose request has no
	// schedule_to_close; 0 means DefaultDispatchTimeout, a negative value
	// no bound.
	DispatchTimeout time.Duration
}

// Service is the front door. Its methods are safe for concurrent use.
type Service struct {
	node    Node
	log     *slog.Logger
	obs     Observer
	metrics http.Handler
	ready   func() error
	timeout time.Duration

	// base is the parent of every dispatch's context: it ends, with
	// errAbandoned as its cause, when a drain gives up waiting.
	base    context.Context
	abandon context.CancelCauseFunc

	mu       sync.Mutex
	draining bool           // Drain was called: HTTP takes no new dispatch
	closed   bool           // the NATS subscriptions are gone too: nothing is taken
	inflight sync.WaitGroup // dispatches taken and not yet answered
	drained  chan struct{}  // closed once closed and none is in flight
	subs     []*natsSub     // the NATS subscriptions taking dispatches
}

// errAbandoned ends the dispatches still running when a drain's deadline
// passes.
var errAbandoned = errors.New("the node is shutting down and its drain timeout ran out before this dispatch ended")

// errClientTimeout ends a dispatch that ran past the client's own
// timeout (protocol.HeaderDispatchTimeout).
type errClientTimeout struct{ after time.Duration }

func (e errClientTimeout) Error() string {
	return fmt.Sprintf("no answer within %s, the client's %s", e.after, protocol.HeaderDispatchTimeout)
}

// clientTimeout reads a request's protocol.HeaderDispatchTimeout: 0 when
// there is none.
func clientTimeout(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("header %s %q: want a positive duration such as 30s", protocol.HeaderDispatchTimeout, v)
	}
	return d, nil
}

// errNodeTimeout ends a dispatch that ran past the service's
// DispatchTimeout.
type errNodeTimeout struct{ after time.Duration }

func (e errNodeTimeout) Error() string {
	return fmt.Sprintf("no answer within %s, the node's bound on a dispatch without schedule_to_close", e.after)
}

// New returns a service dispatching through opts.Node.
func New(opts Options) (*Service, error) {
	if opts.Node == nil {
		return nil, errors.New("service: no node")
	}
	s := &Service{node: opts.Node, log: opts.Logger, obs: opts.Observer, metrics: opts.Metrics, ready: opts.Ready,
		timeout: opts.DispatchTimeout, drained: make(chan struct{})}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.timeout == 0 {
		s.timeout = DefaultDispatchTimeout
	}
	s.base, s.abandon = context.WithCancelCause(context.Background())
	return s, nil
}

// admit takes a dispatch unless the service drains; a taken one must be
// released with done. Over NATS (nats set) a request is taken until the
// subscriptions are gone: one the server delivered before the drain
// unsubscribed was sent to this node, and is answered here.
func (s *Service) admit(nats bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || (s.draining && !nats) {
		return false
	}
	s.inflight.Add(1)
	return true
}

func (s *Service) done() { s.inflight.Done() }

// Draining reports whether Drain was called.
func (s *Service) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// Drain stops taking dispatches and waits until every dispatch already
// taken is answered. HTTP dispatches are refused at once (503, kind
// "draining"); the NATS subscriptions leave their queue group, so other
// nodes take the channels' requests, and the requests the server had
// already delivered to this node are taken and answered. When ctx ends
// first, the dispatches still running are abandoned: each is answered as
// failed with kind "draining", and Drain returns once they are, with an
// error saying so. Calling Drain again waits again.
func (s *Service) Drain(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	subs := s.subs
	s.mu.Unlock()
	var errs []error
	for _, sub := range subs {
		if err := sub.drain(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	if !s.closed {
		s.closed = true // no Add after this: the wait may begin
		go func() { s.inflight.Wait(); close(s.drained) }()
	}
	s.mu.Unlock()
	select {
	case <-s.drained:
		return errors.Join(errs...)
	case <-ctx.Done():
	}
	s.abandon(errAbandoned)
	<-s.drained // each abandoned dispatch ends at once and is answered
	return errors.Join(append(errs, fmt.Errorf("drain: %w: dispatches still running were abandoned", context.Cause(ctx)))...)
}

// dispatch runs one admitted dispatch for transport and returns its
// answer. ctx is the client's (an HTTP request's); it and the service's
// base both end the dispatch.
func (s *Service) dispatch(ctx context.Context, transport string, ch engine.ChannelName, req engine.ActivityRequest, client time.Duration) protocol.Answer {
	start := time.Now()
	if !s.node.Serves(ch) {
		a := refused(protocol.KindUnknownChannel, fmt.Sprintf("unknown channel %s: the config in service has no such channel", ch.Short()))
		if s.obs != nil {
			s.obs.ObserveDispatch(transport, "", a.Kind, time.Since(start))
		}
		s.log.Info("dispatch refused", "transport", transport, "channel", ch.Short(), "workflow_id", req.WorkflowID, "kind", a.Kind)
		return a
	}
	if s.obs != nil {
		s.obs.DispatchStarted()
		defer s.obs.DispatchEnded()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(s.base, func() { cancel(context.Cause(s.base)) })
	defer stop()
	if req.ScheduleToClose == 0 && s.timeout > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeoutCause(ctx, s.timeout, errNodeTimeout{after: s.timeout})
		defer cancelT()
	}
	if client > 0 {
		var cancelC context.CancelFunc
		ctx, cancelC = context.WithTimeoutCause(ctx, client, errClientTimeout{after: client})
		defer cancelC()
	}
	out, err := s.node.DispatchOutcome(ctx, ch.Namespace(), req)
	a := answerOf(out, err)
	label := ch.Short()
	if a.Kind == protocol.KindUnknownChannel {
		label = "" // a client may name any channel: no series for those
	}
	outcome := a.Status
	if a.Kind != "" {
		outcome = a.Kind
	}
	if a.Kind == protocol.KindInternal && errors.Is(err, context.Canceled) && ctx.Err() != nil && s.base.Err() == nil {
		outcome = "canceled" // the client went away
	}
	took := time.Since(start)
	if s.obs != nil {
		s.obs.ObserveDispatch(transport, label, outcome, took)
	}
	attrs := []any{"channel", ch.Short(), "workflow_id", req.WorkflowID, "conversation_id", out.ConversationID,
		"transport", transport, "took", took}
	if a.Status == protocol.StatusCompleted {
		s.log.Debug("dispatch completed", append(attrs, "worker", out.WorkerID, "attempts", out.Attempts)...)
	} else {
		s.log.Info("dispatch failed", append(attrs, "kind", outcome, "worker", out.WorkerID, "error", a.Error)...)
	}
	return a
}

// answerOf is the answer to a dispatch that returned out and err.
func answerOf(out engine.Outcome, err error) protocol.Answer {
	a := protocol.Answer{Status: protocol.StatusCompleted, WorkerID: out.WorkerID, ConversationID: out.ConversationID,
		Attempts: out.Attempts}
	if err == nil {
		a.SetOutput(out.Result.Output)
		return a
	}
	a.Status, a.Kind, a.Error = protocol.StatusFailed, KindOf(err), err.Error()
	switch {
	case a.Kind == protocol.KindActivityFailed:
		a.Error = out.Result.Error // the worker's own words
	case out.Result.Status == engine.StatusCompleted:
		// The worker completed it, and dispatch failed after (its journal
		// refused the close): the output is the client's all the same, so
		// that it need not run the activity again.
		a.SetOutput(out.Result.Output)
	}
	return a
}

// KindOf is the kind of a failed dispatch's error: one of protocol's
// Kind constants.
func KindOf(err error) string {
	var nt errNodeTimeout
	var ct errClientTimeout
	switch {
	case errors.Is(err, engine.ErrActivityFailed):
		return protocol.KindActivityFailed
	case errors.Is(err, errAbandoned):
		return protocol.KindDraining
	case errors.As(err, &nt), errors.As(err, &ct):
		return protocol.KindTimeout
	}
	return protocol.KindOf(err)
}

// HTTPStatus is the HTTP status of an answer: 200 when the activity ran
// (completed or failed by its worker), else by kind: 400 bad request, 404
// unknown channel, 429 backlog full, 503 no workers or draining, 504
// timeout, 500 otherwise.
func HTTPStatus(a protocol.Answer) int {
	if a.Status == protocol.StatusCompleted {
		return http.StatusOK
	}
	switch a.Kind {
	case protocol.KindActivityFailed:
		return http.StatusOK
	case protocol.KindBadRequest:
		return http.StatusBadRequest
	case protocol.KindUnknownChannel:
		return http.StatusNotFound
	case protocol.KindBacklogFull:
		return http.StatusTooManyRequests
	case protocol.KindNoWorkers, protocol.KindDraining:
		return http.StatusServiceUnavailable
	case protocol.KindTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// refused is the answer to a request that was not dispatched.
func refused(kind, msg string) protocol.Answer {
	return protocol.Answer{Status: protocol.StatusFailed, Kind: kind, Error: msg}
}

// label is ch's label in the metrics: "" for a channel the config in
// service lacks, so that clients cannot make series at will.
func (s *Service) label(ch engine.ChannelName) string {
	if s.node.Serves(ch) {
		return ch.Short()
	}
	return ""
}
