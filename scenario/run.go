package scenario

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
	"github.com/aion-dispatch/dispatch/local"
	"github.com/aion-dispatch/dispatch/router"
)

// quiesceLimit bounds the wait for the workers to go idle after a step; it
// is a guard against a hang, not a timing.
const quiesceLimit = 30 * time.Second

// errStuck ends a request that does not finish within quiesceLimit.
var errStuck = errors.New("the request never finished: does it reach a worker that hangs, without a start_to_close?")

// Run runs the scenario and returns its journal: every operation in order,
// with seq numbers, no times, and conversation ids c1, c2, …, router
// sources relative to the scenario's directory. An error means the scenario
// could not run as written (or a replay step found a difference), not that
// its journal differs from the golden one.
func Run(ctx context.Context, s *Scenario) ([]engine.Operation, error) {
	r := &runner{s: s, table: router.NewTable(), pool: local.NewPool(), workers: map[WorkerRef]*scripted{}}
	defer r.pool.Close(context.Background())
	for _, ch := range s.Config.Channels {
		r.table.Set(ch.Name, ch.Router(s.Config.File))
		r.pool.AddChannel(ch.Name)
	}
	for _, w := range s.Workers {
		if err := r.start(w); err != nil {
			return nil, err
		}
	}
	d, err := engine.NewDispatcher(engine.Options{Pool: r.pool, Router: r.table, Conversations: r.pool,
		Recorder: &r.rec, IDs: &engine.SequenceIDs{Prefix: "c"}})
	if err != nil {
		return nil, err
	}
	for _, st := range s.Steps {
		where := fmt.Sprintf("%s:%d", s.File, st.Line)
		switch {
		case st.Request != nil && st.Request.Async:
			if err := r.dispatchAsync(ctx, d, *st.Request, st.Line); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
		case st.Request != nil:
			rctx, cancel := context.WithTimeoutCause(ctx, quiesceLimit, errStuck)
			res, err := d.Dispatch(rctx, st.Request.Channel.Namespace(), st.Request.Channel.TaskQueue(), st.Request.Request)
			cancel()
			if errors.Is(err, errStuck) {
				return nil, fmt.Errorf("%s: %w", where, errStuck)
			}
			r.done = append(r.done, outcome{req: *st.Request, res: res, err: err})
		case st.Swap != nil:
			ch, _ := s.Config.Channel(st.Swap.Channel)
			src := st.Swap.Path
			if src == "" {
				src = fmt.Sprintf("%s:%d (inline)", s.File, st.Line)
			}
			r.table.Set(st.Swap.Channel, router.NewScript(st.Swap.Program, src, ch.ScriptTimeout))
		case st.AddWorker != nil:
			if err := r.start(*st.AddWorker); err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
		case st.RemoveWorker != nil:
			ref := *st.RemoveWorker
			w, ok := r.pool.Remove(ref.Channel, ref.ID)
			if !ok {
				return nil, fmt.Errorf("%s: remove_worker: %s has no worker %s", where, shortName(ref.Channel), ref.ID)
			}
			w.Drain("removed by the scenario")
			delete(r.workers, ref)
		case st.Replay:
			if err := r.replay(ctx); err != nil {
				return nil, fmt.Errorf("%s: replay: %w", where, err)
			}
		}
		if err := r.quiesce(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	for len(r.async) > 0 {
		a := r.async[0]
		a.cancel()
		<-a.done
		r.async = r.async[1:]
		if err := r.quiesce(ctx); err != nil {
			return nil, fmt.Errorf("%s: cancelling the async request of line %d: %w", s.File, a.line, err)
		}
	}
	return normalise(r.rec.ops(), s), nil
}

// pending is an async request still running.
type pending struct {
	line   int
	worker WorkerRef // the worker that has it
	cancel context.CancelFunc
	done   chan struct{}
}

// dispatchAsync starts a dispatch and returns once it is with a worker (or
// is over, if no worker could take it).
func (r *runner) dispatchAsync(ctx context.Context, d *engine.Dispatcher, req Request, line int) error {
	before := len(r.rec.ops())
	actx, cancel := context.WithCancel(ctx)
	p := &pending{line: line, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		d.Dispatch(actx, req.Channel.Namespace(), req.Channel.TaskQueue(), req.Request)
	}()
	deadline := time.Now().Add(quiesceLimit)
	for {
		for _, op := range r.rec.ops()[before:] {
			switch op.Kind {
			case engine.OpMessageSent:
				p.worker = WorkerRef{req.Channel, op.WorkerID}
				r.async = append(r.async, p)
				return nil
			case engine.OpConversationClosed:
				<-p.done
				cancel()
				return nil
			}
		}
		if time.Now().After(deadline) {
			cancel()
			return errors.New("async request never reached a worker")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

type runner struct {
	s       *Scenario
	table   *router.Table
	pool    *local.Pool
	rec     collector
	workers map[WorkerRef]*scripted
	done    []outcome  // the requests so far and what came of them
	async   []*pending // async requests still open, in order
}

type outcome struct {
	req Request
	res engine.ActivityResult
	err error
}

// scripted is a running scripted worker.
type scripted struct {
	spec Worker
	n    atomic.Int64 // requests received
	w    atomic.Pointer[local.Worker]
	busy sync.WaitGroup // handlers running
}

func (r *runner) start(spec Worker) error {
	sw := &scripted{spec: spec}
	w, err := r.pool.Start(spec.Channel, local.WorkerConfig{ID: spec.ID, MaxInFlight: spec.MaxInFlight, Tags: spec.Tags,
		Handler: sw.handle})
	if err != nil {
		return fmt.Errorf("worker %s: %w", spec.ID, err)
	}
	sw.w.Store(w)
	r.workers[WorkerRef{spec.Channel, spec.ID}] = sw
	return nil
}

// handle does what the script says for this request.
func (sw *scripted) handle(ctx context.Context, req engine.ActivityRequest) engine.ActivityResult {
	sw.busy.Add(1)
	defer sw.busy.Done()
	k := int(sw.n.Add(1)) - 1
	a := sw.spec.Script[min(k, len(sw.spec.Script)-1)]
	if a.Latency > 0 {
		t := time.NewTimer(a.Latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return engine.Failed("cancelled")
		case <-t.C:
		}
	}
	switch a.Kind {
	case Complete:
		return engine.Completed(a.Output)
	case Fail:
		return engine.Failed(a.Message)
	case Exit:
		sw.w.Load().Stop(a.Message)
		return engine.ActivityResult{}
	}
	<-ctx.Done() // Hang
	return engine.Failed("cancelled")
}

// quiesce waits until the workers hold exactly the async activities still
// open, running or queued, so that the next step's snapshot does not depend
// on how fast the last one wound down.
func (r *runner) quiesce(ctx context.Context) error {
	held := map[WorkerRef]int{}
	for _, p := range r.async {
		held[p.worker]++
	}
	deadline := time.Now().Add(quiesceLimit)
	for {
		settled, load := true, 0
		for _, ch := range r.s.Config.Channels {
			ws, err := r.pool.Workers(ctx, ch.Name, engine.ActivityRequest{})
			if err != nil {
				return err
			}
			for _, w := range ws {
				// A worker runs what it holds up to its capacity and queues
				// the rest, once its executors have caught up.
				k := held[WorkerRef{ch.Name, w.ID}]
				run := min(k, w.State.MaxInFlight)
				if w.State.InFlight != run || w.State.BufferDepth != k-run {
					settled = false
				}
				load += w.State.InFlight + w.State.BufferDepth
			}
		}
		if settled {
			if len(r.async) == 0 {
				for _, sw := range r.workers {
					sw.busy.Wait()
				}
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("workers hold %d activities after the step, want %d (a hang without a timeout? async to a worker that answers?)", load, len(r.async))
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// replay re-dispatches every request so far through a dispatcher that has
// only the recorded operations: no pool, router, conversation or recording
// may be touched, and each outcome must equal the live one.
func (r *runner) replay(ctx context.Context) error {
	ops := r.rec.ops()
	rp := journal.NewReplay(ops, nil)
	var touched touchCounter
	d, err := engine.NewDispatcher(engine.Options{Pool: &touched, Router: &touched, Conversations: &touched,
		Recorder: replayOnly{rp, &touched}})
	if err != nil {
		return err
	}
	for i, o := range r.done {
		res, err := d.Dispatch(ctx, o.req.Channel.Namespace(), o.req.Channel.TaskQueue(), o.req.Request)
		if !reflect.DeepEqual(res, o.res) || errText(err) != errText(o.err) {
			return fmt.Errorf("request %d (workflow %s): replayed %+v, %v; live it was %+v, %v",
				i+1, o.req.Request.WorkflowID, res, err, o.res, o.err)
		}
	}
	if n := touched.n.Load(); n > 0 {
		return fmt.Errorf("%d live operations during the replay; want none", n)
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// touchCounter is a pool, router, conversation factory and recorder that
// counts every use; a replay must use none.
type touchCounter struct{ n atomic.Int64 }

func (t *touchCounter) Workers(context.Context, engine.ChannelName, engine.ActivityRequest) ([]engine.Worker, error) {
	t.n.Add(1)
	return nil, errors.New("replay touched the worker pool")
}

func (t *touchCounter) Select(context.Context, engine.Selection) (engine.Decision, error) {
	t.n.Add(1)
	return engine.Decision{}, errors.New("replay touched the router")
}

func (t *touchCounter) Open(context.Context, string, engine.ChannelName, string) (engine.Conversation, error) {
	t.n.Add(1)
	return nil, errors.New("replay opened a conversation")
}

// replayOnly answers from the recorded operations and counts any recording.
type replayOnly struct {
	rp      *journal.Replay
	touched *touchCounter
}

func (r replayOnly) ReplayOutcome(ctx context.Context, ch engine.ChannelName, req engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	return r.rp.ReplayOutcome(ctx, ch, req)
}

func (r replayOnly) Record(context.Context, engine.Operation) error {
	r.touched.n.Add(1)
	return errors.New("replay recorded an operation")
}

// collector keeps every operation, numbering them.
type collector struct {
	mu  sync.Mutex
	all []engine.Operation
}

func (c *collector) ReplayOutcome(context.Context, engine.ChannelName, engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	return engine.RecordedOutcome{}, false, nil
}

func (c *collector) Record(_ context.Context, op engine.Operation) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	op.Seq = uint64(len(c.all) + 1)
	c.all = append(c.all, op)
	return nil
}

func (c *collector) ops() []engine.Operation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]engine.Operation(nil), c.all...)
}

// normalise makes a journal independent of the directory the scenario was
// run from: the paths of the scenario, its config and its scripts, in
// router sources and messages, are made relative to the scenario's
// directory.
func normalise(ops []engine.Operation, s *Scenario) []engine.Operation {
	dir := filepath.Dir(s.File)
	paths := []string{s.File, s.Config.File}
	for _, ch := range s.Config.Channels {
		paths = append(paths, ch.Routing.Path)
	}
	for _, st := range s.Steps {
		if st.Swap != nil {
			paths = append(paths, st.Swap.Path)
		}
	}
	// Longest first, so that no path is rewritten inside a longer one.
	slices.SortFunc(paths, func(a, b string) int { return len(b) - len(a) })
	var pairs []string
	for _, p := range slices.Compact(paths) {
		if p == "" {
			continue
		}
		if rel, err := filepath.Rel(dir, p); err == nil {
			pairs = append(pairs, p, filepath.ToSlash(rel))
		}
	}
	r := strings.NewReplacer(pairs...)
	for i := range ops {
		ops[i].Router.Source = r.Replace(ops[i].Router.Source)
		ops[i].Message = r.Replace(ops[i].Message)
	}
	return ops
}

func shortName(ch engine.ChannelName) string { return ch.Namespace() + "/" + ch.TaskQueue() }
