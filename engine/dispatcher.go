package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// TimeoutError is the cause of a dispatch that ran out of time. It matches
// its Timeout sentinel and [context.DeadlineExceeded] through [errors.Is].
type TimeoutError struct {
	Timeout error         // ErrScheduleToStartTimeout, ErrStartToCloseTimeout or ErrScheduleToCloseTimeout
	After   time.Duration // the bound that was exceeded
}

// Error implements error: "start-to-close timeout after 2s".
func (e *TimeoutError) Error() string { return fmt.Sprintf("%v after %s", e.Timeout, e.After) }

// Unwrap returns the Timeout sentinel.
func (e *TimeoutError) Unwrap() error { return e.Timeout }

// Is makes a TimeoutError match [context.DeadlineExceeded].
func (e *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Options configures a [Dispatcher]. Pool, Router and Conversations are
// required.
type Options struct {
	Pool          WorkerPool
	Router        Router
	Conversations ConversationFactory
	// Recorder records every step and answers replays. Nil records nothing
	// and always dispatches live.
	Recorder Recorder
	// IDs hands out conversation ids. Nil means [RandomIDs].
	IDs IDSource
	// Capacity tells the activities waiting in a channel's backlog when to
	// look again. Nil: an activity no worker can take now fails with
	// ErrNoWorkers at once, as if every channel's policy said
	// FailWhenFull.
	Capacity CapacitySignal
	// Backlog returns a channel's backlog policy; nil means the defaults
	// (BacklogPolicy{}) for every channel.
	Backlog func(ChannelName) BacklogPolicy
}

// Dispatcher runs dispatch conversations. It is safe for concurrent use; each
// Dispatch call is independent.
type Dispatcher struct {
	pool     WorkerPool
	router   Router
	convs    ConversationFactory
	rec      Recorder
	ids      IDSource
	capacity CapacitySignal
	policy   func(ChannelName) BacklogPolicy
	backlogs backlogs
}

// NewDispatcher returns a dispatcher over the given pool, router, conversation
// factory and recorder.
func NewDispatcher(opts Options) (*Dispatcher, error) {
	var missing []string
	if opts.Pool == nil {
		missing = append(missing, "Pool")
	}
	if opts.Router == nil {
		missing = append(missing, "Router")
	}
	if opts.Conversations == nil {
		missing = append(missing, "Conversations")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("engine: dispatcher options lack %s", strings.Join(missing, ", "))
	}
	d := &Dispatcher{pool: opts.Pool, router: opts.Router, convs: opts.Conversations, rec: opts.Recorder, ids: opts.IDs,
		capacity: opts.Capacity, policy: opts.Backlog}
	if d.ids == nil {
		d.ids = RandomIDs{}
	}
	return d, nil
}

// Waiting returns how many activities wait in the backlog of channel now.
func (d *Dispatcher) Waiting(channel ChannelName) int { return d.backlogs.waiting(channel) }

// Dispatch sends req to one worker of the channel of req.TaskQueue in
// namespace and returns the worker's result. The request's task queue is
// the one source of the channel: it is what the worker receives too. In
// order, it:
//
//  1. builds the channel name;
//  2. asks the recorder for a replayed outcome and, if there is one, returns
//     it without touching pool, router or conversations;
//  3. opens a conversation and records conversation_opened;
//  4. takes a fresh snapshot of the pool, asks the router (without the
//     workers excluded so far), links into a free slot, sends and
//     receives; when no worker can take it now (no free slot, the router
//     chose none or a full worker) it records activity_waiting and waits
//     in the channel's backlog, to be tried again when capacity changes,
//     unless the channel's [BacklogPolicy] says to fail at once (or the
//     backlog is full: [ErrBacklogFull]); when the linked worker exits
//     first it excludes that worker and tries again; when the worker did
//     not start the activity ([ErrNotStarted]) it waits in the backlog
//     again, without excluding that worker;
//  5. closes the conversation, whatever happened, and records
//     conversation_closed.
//
// Any failure is a [*DispatchError]. A Failed result is returned together
// with an error matching [ErrActivityFailed]. ctx cancels everything; the
// request's ScheduleToStart (or the channel's) bounds each wait in the
// backlog, StartToClose each attempt from its send to the answer, and
// ScheduleToClose the whole conversation (see [TimeoutError]). A timed-out
// activity is not sent again: retries belong to the workflow engine.
func (d *Dispatcher) Dispatch(ctx context.Context, namespace string, req ActivityRequest) (ActivityResult, error) {
	out, err := d.DispatchOutcome(ctx, namespace, req)
	return out.Result, err
}

// Outcome is what one dispatch came to: the worker's result and where the
// activity went. A front door answers its client with it.
type Outcome struct {
	Result ActivityResult
	// ConversationID is the conversation's id, "" when none was opened (an
	// invalid request, or an answer replayed from a journal).
	ConversationID string
	// WorkerID is the worker that answered; when none did, the worker that
	// had the activity when the dispatch ended, or "".
	WorkerID string
	// Attempts counts the workers selected, the first included: 1 for an
	// activity the first worker answered, more after re-routes and
	// activities a worker did not start; 0 when none was selected.
	Attempts int
}

// DispatchOutcome is [Dispatcher.Dispatch] with the whole [Outcome]: the
// same dispatch, the same result and error, and where it went.
func (d *Dispatcher) DispatchOutcome(ctx context.Context, namespace string, req ActivityRequest) (Outcome, error) {
	c := call{d: d, req: req}
	res, err := c.dispatch(ctx, namespace)
	return Outcome{Result: res, ConversationID: c.convID, WorkerID: c.worker, Attempts: c.selected}, err
}

func (c *call) dispatch(ctx context.Context, namespace string) (ActivityResult, error) {
	d, req := c.d, c.req
	ch, err := DispatchChannel(namespace, req.TaskQueue)
	if err != nil {
		return ActivityResult{}, &DispatchError{WorkflowID: req.WorkflowID, Err: err}
	}
	c.ch = ch
	if req.ScheduleToClose < 0 || req.StartToClose < 0 || req.ScheduleToStart < 0 {
		return ActivityResult{}, c.error(fmt.Errorf("%w: negative timeout", ErrInvalidRequest))
	}
	if d.policy != nil {
		c.policy = d.policy(ch)
	}
	if c.req.ScheduleToStart == 0 {
		c.req.ScheduleToStart = c.policy.ScheduleToStart
	}
	if d.rec != nil {
		out, ok, err := d.rec.ReplayOutcome(ctx, ch, req)
		if err != nil {
			return ActivityResult{}, c.error(fmt.Errorf("replay: %w", err))
		}
		if ok {
			return out.Result, out.Err
		}
	}
	if ctx.Err() != nil {
		return ActivityResult{}, c.error(context.Cause(ctx))
	}
	c.caller = ctx
	if req.ScheduleToClose > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.ScheduleToClose)
		defer cancel()
	}
	c.convID = d.ids.NextConversationID()
	conv, err := d.convs.Open(ctx, req.WorkflowID, ch, c.convID)
	if err != nil {
		return ActivityResult{}, c.error(c.stopped(ctx, fmt.Errorf("open conversation: %w", err)))
	}
	c.conv = conv
	res, err := c.runContained(ctx)
	return c.finish(ctx, res, err)
}

// runContained runs the attempt loop, turning a panic in the pool, the
// router, the conversation or the recorder into an error, so that the
// conversation is still closed.
func (c *call) runContained(ctx context.Context) (res ActivityResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = ActivityResult{}, fmt.Errorf("%w: %v", ErrPanic, r)
		}
	}()
	return c.run(ctx)
}

// call is the state of one Dispatch.
type call struct {
	d        *Dispatcher
	caller   context.Context // the caller's context, before schedule-to-close
	ch       ChannelName
	req      ActivityRequest
	convID   string
	conv     Conversation
	attempt  int
	selected int            // worker_selected recorded
	worker   string         // the worker of the current attempt, "" before selection
	opened   bool           // conversation_opened was recorded
	started  bool           // worker_selected was recorded for the current attempt
	final    ActivityState  // the state conversation_closed records
	result   ActivityResult // the worker's answer, when there was one
	policy   BacklogPolicy  // the channel's
	failedBy RouterVersion  // the router version whose call failed, if one did
	// Without the pool's [Membership], the workers this activity has seen:
	// the first snapshot (kept as the pool returned it: building a set on
	// every dispatch would cost each one two allocations) and the ids of
	// those taken after it.
	first  []Worker
	looked bool
	seen   map[string]bool
}

func (c *call) run(ctx context.Context) (ActivityResult, error) {
	c.final = StateFailed(true)
	if err := c.record(ctx, &Operation{Kind: OpConversationOpened, State: StateScheduled, Request: c.req}); err != nil {
		return ActivityResult{}, err
	}
	c.opened = true
	var excluded []string
	var refused *notNow // why the last attempt's worker did not start the activity
	for c.attempt = 1; ; c.attempt++ {
		c.worker, c.started = "", false
		if err := ctx.Err(); err != nil {
			return ActivityResult{}, err
		}
		var p placement
		var err error
		if refused != nil {
			p, err = c.requeue(ctx, excluded, refused)
			refused = nil
		} else {
			p, err = c.place(ctx, excluded)
		}
		if err != nil {
			return ActivityResult{}, err
		}
		w := p.worker
		if err := c.record(ctx, &Operation{Kind: OpWorkerSelected, WorkerID: w.ID(), State: StateStarted,
			Attempt: c.attempt, Router: p.version, Candidates: p.seen, Excluded: slices.Clip(excluded),
			Waited: p.waited}); err != nil {
			return ActivityResult{}, err
		}
		c.started = true
		c.selected++
		if err := c.conv.Send(ctx, DispatchRequest{ConversationID: c.convID, Attempt: c.attempt, Request: c.req}); err != nil {
			if errors.Is(err, ErrNotStarted) {
				// Not started, not an exit: back to the backlog, and the
				// next attempt is routed as the first was.
				refused = &notNow{err: fmt.Errorf("%w: %w", ErrNoWorkers, err), declined: true}
				continue
			}
			return ActivityResult{}, fmt.Errorf("send: %w", err)
		}
		if err := c.record(ctx, &Operation{Kind: OpMessageSent, WorkerID: w.ID(), Attempt: c.attempt}); err != nil {
			return ActivityResult{}, err
		}
		ev, err := c.receive(ctx)
		if err != nil {
			return ActivityResult{}, err
		}
		if (ev.WorkerID != "" && ev.WorkerID != w.ID()) || (ev.Attempt != 0 && ev.Attempt != c.attempt) {
			return ActivityResult{}, fmt.Errorf("receive: an event of worker %s, attempt %d, during attempt %d with worker %s",
				ev.WorkerID, ev.Attempt, c.attempt, w.ID())
		}
		switch ev.Kind {
		case EventResponse:
			return c.answered(ev.Result)
		case EventWorkerExited:
			msg := ev.Message
			if msg == "" {
				msg = "worker exited"
			}
			if err := c.record(ctx, &Operation{Kind: OpWorkerExited, WorkerID: w.ID(), State: StateFailed(true),
				Message: msg, Attempt: c.attempt}); err != nil {
				return ActivityResult{}, err
			}
			excluded = append(excluded, w.ID())
		default:
			return ActivityResult{}, fmt.Errorf("receive: unknown event kind %d", ev.Kind)
		}
	}
}

// receive waits for the worker, bounded by the request's start-to-close.
func (c *call) receive(ctx context.Context) (Event, error) {
	if c.req.StartToClose <= 0 {
		return c.conv.Receive(ctx)
	}
	deadline := time.Now().Add(c.req.StartToClose)
	if sd, ok := ctx.Deadline(); ok && !sd.After(deadline) {
		return c.conv.Receive(ctx) // schedule-to-close (or the caller) ends it first
	}
	// The caller's context, not ctx, is the parent: its deadline is later and
	// a context with no children to track costs less.
	actx, cancel := context.WithDeadline(c.caller, deadline)
	defer cancel()
	ev, err := c.conv.Receive(actx)
	if err != nil && c.caller.Err() == nil && actx.Err() != nil && errors.Is(err, actx.Err()) {
		return ev, &TimeoutError{Timeout: ErrStartToCloseTimeout, After: c.req.StartToClose}
	}
	return ev, err
}

// answered records the worker's response and turns it into Dispatch's result.
// The answer arrived in time: it is recorded even if ctx ends meanwhile (a
// journal waiting for a slow disk), like the close that follows it, so that
// neither the result nor the journal's story is lost to a late deadline.
func (c *call) answered(res ActivityResult) (ActivityResult, error) {
	ctx := uncancelled(c.caller)
	switch res.Status {
	case StatusCompleted:
		res = Completed(res.Output) // a completed result carries no error
		c.final, c.result = StateCompleted, res
		return res, c.record(ctx, &Operation{Kind: OpMessageReceived, WorkerID: c.worker, State: StateCompleted,
			Result: res, Attempt: c.attempt})
	case StatusFailed:
		res = Failed(res.Error) // a failed result carries no output
		c.final, c.result = StateFailed(false), res
		failed := ErrActivityFailed
		if res.Error != "" {
			failed = fmt.Errorf("%w: %s", ErrActivityFailed, res.Error)
		}
		return res, errors.Join(failed, c.record(ctx, &Operation{Kind: OpMessageReceived, WorkerID: c.worker,
			State: c.final, Result: res, Message: res.Error, Attempt: c.attempt}))
	}
	return ActivityResult{}, fmt.Errorf("receive: worker answered with an invalid result status %d", res.Status)
}

// stopped reports why ctx ended instead of the symptom err, and records
// worker_timed_out when a timeout fired while a worker had the activity.
func (c *call) stopped(ctx context.Context, err error) error {
	var te *TimeoutError
	if errors.As(err, &te) {
		// Already the timeout that fired; a later deadline must not replace it.
	} else if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		if c.caller.Err() == nil {
			err = &TimeoutError{Timeout: ErrScheduleToCloseTimeout, After: c.req.ScheduleToClose}
		} else {
			err = context.Cause(c.caller)
		}
	}
	if errors.As(err, &te) && c.started {
		rerr := c.record(uncancelled(c.caller), &Operation{Kind: OpWorkerTimedOut, WorkerID: c.worker,
			State: StateFailed(true), Message: err.Error(), Attempt: c.attempt})
		return errors.Join(err, rerr)
	}
	return err
}

// finish closes the conversation, records conversation_closed and builds
// Dispatch's return values.
func (c *call) finish(ctx context.Context, res ActivityResult, err error) (ActivityResult, error) {
	if err != nil {
		err = c.stopped(ctx, err)
	}
	closeErr := c.conv.Close()
	if closeErr != nil {
		closeErr = fmt.Errorf("close conversation: %w", closeErr)
	}
	err = errors.Join(err, closeErr)
	op := Operation{Kind: OpConversationClosed, WorkerID: c.worker, State: c.final, Result: c.result, Attempt: c.attempt}
	if err != nil {
		op.Message = err.Error()
		if errors.Is(err, ErrRouting) {
			op.Router = c.failedBy // the version that failed: it chose no worker_selected line
		}
	}
	// A conversation the journal never opened is not closed there either.
	if c.opened && c.d.rec != nil {
		rerr := c.record(uncancelled(c.caller), &op)
		if rerr != nil && !op.Result.IsZero() {
			// The result may be what the recorder refused (a line too long
			// for it): the conversation is still closed, without it, and
			// the message says why, as the dispatch's error does.
			err = errors.Join(err, rerr)
			op.Result, op.Message = ActivityResult{}, err.Error()
			rerr = c.record(uncancelled(c.caller), &op)
		}
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return res, c.error(err)
	}
	return res, nil
}

// record completes op with the conversation's identity and records it, if
// the dispatcher has a recorder. op is passed by address so that the large
// operation is copied once, into the recorder.
func (c *call) record(ctx context.Context, op *Operation) error {
	if c.d.rec == nil {
		return nil
	}
	op.WorkflowID = c.req.WorkflowID
	op.ConversationID = c.convID
	op.Channel = c.ch
	if err := c.d.rec.Record(ctx, *op); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrRecord, op.Kind, err)
	}
	return nil
}

func (c *call) error(err error) *DispatchError {
	return &DispatchError{Channel: c.ch, WorkflowID: c.req.WorkflowID, ConversationID: c.convID, WorkerID: c.worker, Err: err}
}

// uncancelled returns ctx's values without its cancellation, for the records
// that must be written whatever ended the conversation.
func uncancelled(ctx context.Context) context.Context {
	if ctx.Done() == nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// noWorkers is the error of an attempt left without candidates: nobody is
// subscribed, or every subscriber is excluded. Excluded ids that are no
// longer subscribed are listed apart, so that every count agrees with the
// ids beside it.
func noWorkers(snapshot []Worker, excluded []string) error {
	var gone []string
	for _, id := range excluded {
		if _, ok := findWorker(snapshot, id); !ok {
			gone = append(gone, id)
		}
	}
	var msg string
	switch len(snapshot) {
	case 0:
		msg = "no workers subscribed"
	case 1:
		msg = fmt.Sprintf("the 1 subscribed worker is excluded (%s)", workerIDs(snapshot))
	default:
		msg = fmt.Sprintf("all %d subscribed workers are excluded (%s)", len(snapshot), workerIDs(snapshot))
	}
	if len(gone) > 0 {
		msg += "; also excluded, no longer subscribed: " + strings.Join(gone, ", ")
	}
	return fmt.Errorf("%w: %s", ErrNoWorkers, msg)
}

// choseNone is the error of a router that chose none of the candidates.
func choseNone(v RouterVersion, cands []Worker) error {
	noun := "candidates"
	if len(cands) == 1 {
		noun = "candidate"
	}
	return fmt.Errorf("%w: %s %s chose none of %d %s (%s)", ErrNoWorkers, routerWord(v), versionText(v), len(cands), noun, listIDs(cands))
}

// listIDs names the workers' ids, the first maxListedIDs of them, then
// counts the rest.
func listIDs(ws []Worker) string {
	ids := make([]string, 0, min(len(ws), maxListedIDs))
	for _, w := range ws[:min(len(ws), maxListedIDs)] {
		ids = append(ids, w.ID())
	}
	list := strings.Join(ids, ", ")
	if more := len(ws) - len(ids); more > 0 {
		list += fmt.Sprintf(" and %d more", more)
	}
	return list
}

// maxListedIDs is how many candidate ids a message names before it counts
// the rest: a message (and the journal line that keeps it) stays short
// however large the pool.
const maxListedIDs = 10

// withoutExcluded returns the workers whose ids are not excluded, in order.
// When none of ws is excluded it returns ws itself.
func withoutExcluded(ws []Worker, excluded []string) []Worker {
	if len(excluded) == 0 || !slices.ContainsFunc(ws, func(w Worker) bool { return slices.Contains(excluded, w.ID()) }) {
		return ws
	}
	out := make([]Worker, 0, len(ws))
	for _, w := range ws {
		if !slices.Contains(excluded, w.ID()) {
			out = append(out, w)
		}
	}
	return out
}

func findWorker(ws []Worker, id string) (Worker, bool) {
	for _, w := range ws {
		if w.ID() == id {
			return w, true
		}
	}
	return Worker{}, false
}

func views(ws []Worker) []ConsumerStateView {
	out := make([]ConsumerStateView, len(ws))
	for i := range ws { // by index: a Worker is too large to copy whole for its State
		out[i] = ws[i].State
	}
	return out
}

func workerIDs(ws []Worker) string {
	ids := make([]string, len(ws))
	for i, w := range ws {
		ids[i] = w.ID()
	}
	return strings.Join(ids, ", ")
}

func versionText(v RouterVersion) string {
	if v == (RouterVersion{}) {
		return "(unversioned)"
	}
	s := v.Lang
	if v.Source != "" {
		s += " " + v.Source
	}
	if v.Hash != "" {
		s += " " + v.Hash
	}
	return s
}
