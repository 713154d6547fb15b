package scenario

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
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

// stepLimit bounds the wait for one step (a request to finish, the workers
// to settle) when ctx has no earlier deadline; it guards against a hang, it
// is not a timing.
const stepLimit = 30 * time.Second

// errStuck ends a request that does not finish within the step's limit.
var errStuck = errors.New("the request never finished: does it reach a worker that hangs, without a start_to_close?")

// Run runs the scenario and returns its journal: every operation in order,
// with seq numbers, no times, and conversation ids c1, c2, …, with the
// paths of the scenario, its config and its scripts relative to the
// scenario's directory. An error means the scenario could not run as
// written (or a replay step found a difference), not that its journal
// differs from the golden one. Each step may take up to 30s, or until ctx's
// deadline if that is sooner.
func Run(ctx context.Context, s *Scenario) ([]engine.Operation, error) {
	r := &runner{s: s, table: router.NewTable(), pool: local.NewPool(), workers: map[WorkerRef]*scripted{}}
	defer r.pool.Close(context.Background())
	defer r.abandon() // async dispatches still open after an error
	routes := make(map[engine.ChannelName]engine.Router, len(s.Config.Channels))
	names := make([]engine.ChannelName, 0, len(s.Config.Channels))
	for _, ch := range s.Config.Channels {
		routes[ch.Name] = ch.Router(s.Config.File)
		names = append(names, ch.Name)
	}
	r.table.SetAll(routes) // one copy of each map for all the channels
	r.pool.AddChannels(names...)
	for _, w := range s.Workers {
		if err := r.start(w); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", s.File, w.Line, err)
		}
	}
	backlogs := s.Config.BacklogPolicies()
	d, err := engine.NewDispatcher(engine.Options{Pool: r.pool, Router: r.table, Conversations: r.pool,
		Recorder: &r.rec, IDs: &engine.SequenceIDs{Prefix: "c"}, Capacity: r.pool,
		Backlog: func(ch engine.ChannelName) engine.BacklogPolicy { return backlogs[ch] }})
	if err != nil {
		return nil, err
	}
	for _, st := range s.Steps {
		if err := r.step(ctx, d, st); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", s.File, st.Line, err)
		}
		if err := r.quiesce(ctx); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", s.File, st.Line, err)
		}
	}
	for len(r.async) > 0 {
		a := r.async[0]
		a.cancel()
		<-a.done
		r.async = r.async[1:]
		if err := r.quiesce(ctx); err != nil {
			return nil, fmt.Errorf("%s:%d: cancelling this async request: %w", s.File, a.line, err)
		}
	}
	return normalise(r.rec.ops(), s), nil
}

// step runs one step.
func (r *runner) step(ctx context.Context, d *engine.Dispatcher, st Step) error {
	switch {
	case st.Request != nil && st.Request.Async:
		return r.dispatchAsync(ctx, d, *st.Request, st.Line)
	case st.Request != nil:
		rctx, cancel := context.WithDeadlineCause(ctx, limit(ctx), errStuck)
		res, err := d.Dispatch(rctx, st.Request.Channel.Namespace(), st.Request.Channel.TaskQueue(), st.Request.Request)
		ended := rctx.Err() != nil // the step's limit or ctx, not the request's own timeouts
		cancel()
		if ended {
			return errStuck
		}
		r.done = append(r.done, outcome{req: *st.Request, res: res, err: err})
	case st.Swap != nil:
		ch, _ := r.s.Config.Channel(st.Swap.Channel)
		src := st.Swap.Path
		if src == "" {
			src = fmt.Sprintf("%s:%d (inline)", r.s.File, st.Line)
		}
		r.table.Set(st.Swap.Channel, router.NewScript(st.Swap.Program, src, ch.ScriptTimeout))
		r.pool.Poke(st.Swap.Channel) // the new version may take what the old held back
	case st.AddWorker != nil:
		return r.start(*st.AddWorker)
	case st.RemoveWorker != nil:
		ref := *st.RemoveWorker
		w, ok := r.pool.Remove(ref.Channel, ref.ID)
		if !ok {
			return fmt.Errorf("remove_worker: %s has no worker %s", ref.Channel.Short(), ref.ID)
		}
		w.Drain("removed by the scenario")
		delete(r.workers, ref)
	case st.Replay:
		if err := r.replay(ctx); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	return nil
}

// limit returns until when a step may wait: stepLimit from now, or ctx's
// deadline if sooner.
func limit(ctx context.Context) time.Time {
	deadline := time.Now().Add(stepLimit)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		return dl
	}
	return deadline
}

// pending is an async request still open.
type pending struct {
	line   int
	conv   string // its conversation
	cancel context.CancelFunc
	done   chan struct{}
}

// dispatchAsync starts a dispatch and returns once it is with a worker. A
// dispatch that ends before that (no worker could take it) is simply over.
func (r *runner) dispatchAsync(ctx context.Context, d *engine.Dispatcher, req Request, line int) error {
	before := len(r.rec.ops())
	actx, cancel := context.WithCancel(ctx)
	p := &pending{line: line, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		d.Dispatch(actx, req.Channel.Namespace(), req.Channel.TaskQueue(), req.Request)
	}()
	deadline := limit(ctx)
	for {
		for _, op := range r.rec.ops()[before:] {
			switch op.Kind {
			case engine.OpMessageSent:
				p.conv = op.ConversationID
				r.async = append(r.async, p)
				return nil
			case engine.OpConversationClosed:
				<-p.done
				cancel()
				return nil
			}
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			cancel()
			<-p.done
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return errors.New("the async request never reached a worker")
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// abandon cancels the async dispatches still open and waits for them.
func (r *runner) abandon() {
	for _, a := range r.async {
		a.cancel()
		<-a.done
	}
	r.async = nil
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
	spec  Worker
	ready chan struct{} // closed once w is set
	n     atomic.Int64  // requests received
	w     atomic.Pointer[local.Worker]
	busy  sync.WaitGroup // handlers running
}

func (r *runner) start(spec Worker) error {
	sw := &scripted{spec: spec, ready: make(chan struct{})}
	w, err := r.pool.Start(spec.Channel, local.WorkerConfig{ID: spec.ID, MaxInFlight: spec.MaxInFlight, Tags: spec.Tags,
		Handler: sw.handle})
	if err != nil {
		return fmt.Errorf("worker %s: %w", spec.ID, err)
	}
	sw.w.Store(w)
	close(sw.ready)
	r.workers[WorkerRef{spec.Channel, spec.ID}] = sw
	return nil
}

// handle does what the script says for this request.
func (sw *scripted) handle(ctx context.Context, req engine.ActivityRequest) engine.ActivityResult {
	sw.busy.Add(1)
	defer sw.busy.Done()
	<-sw.ready
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
// open, each in a slot and taken by an executor, so that the next step's
// snapshot does not depend on how fast the last one wound down. An activity
// whose conversation closed (a timeout) while it waited in a worker's
// mailbox keeps its slot until an executor takes it out, so it is waited
// for too.
func (r *runner) quiesce(ctx context.Context) error {
	held := map[WorkerRef]int{} // async activities per worker: each where it was sent last
	last := map[string]WorkerRef{}
	for _, op := range r.rec.ops() {
		if op.Kind == engine.OpMessageSent {
			last[op.ConversationID] = WorkerRef{op.Channel, op.WorkerID}
		}
	}
	for _, p := range r.async {
		held[last[p.conv]]++
	}
	deadline := limit(ctx)
	for {
		for _, p := range r.async {
			select {
			case <-p.done:
				return fmt.Errorf("the async request of line %d finished while the scenario went on; async needs a worker that hangs", p.line)
			default:
			}
		}
		settled, load := true, 0
		for _, ch := range r.s.Config.Channels {
			ws, err := r.pool.Workers(ctx, ch.Name, engine.ActivityRequest{})
			if err != nil {
				return err
			}
			for _, w := range ws {
				// A slot for each activity the worker holds (InFlight), and
				// none of them still waiting for an executor (BufferDepth).
				st := w.State
				if st.InFlight != held[WorkerRef{ch.Name, w.ID}] || st.BufferDepth != 0 {
					settled = false
				}
				load += st.InFlight
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
		if ctx.Err() != nil {
			return context.Cause(ctx)
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
	// Through the journal's own format and reader, as a replay from a file.
	data, err := Journal(r.rec.ops())
	if err != nil {
		return err
	}
	ops, _, err := journal.ReadAll(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("read back the journal: %w", err)
	}
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
// directory. It also makes it independent of the scripts' exact text:
// router hashes become v1, v2, … in the order they first appear (in full,
// and in the 12-digit form messages use), so that an edit that changes no
// decision (a comment, a renamed local) leaves the golden as it was, while
// a swap still shows as a new version.
func normalise(ops []engine.Operation, s *Scenario) []engine.Operation {
	// The versions are the scenario's own programs' and those the journal
	// names; only those are numbered, and only where a hash is written
	// (sha256:HEX, or LANG HEX12 in messages), so that other text that
	// looks like hex stays as it is.
	known := map[string]string{} // 12-digit form → vN
	number := func(h string) {
		if h == "" {
			return
		}
		hex := strings.TrimPrefix(h, "sha256:")
		if key := hex[:min(12, len(hex))]; known[key] == "" {
			known[key] = fmt.Sprintf("v%d", len(known)+1)
		}
	}
	var programs []string
	for _, ch := range s.Config.Channels {
		if p := ch.Routing.Program; p != nil {
			programs = append(programs, p.Hash())
		}
	}
	for _, st := range s.Steps {
		if st.Swap != nil && st.Swap.Program != nil {
			programs = append(programs, st.Swap.Program.Hash())
		}
	}
	for _, op := range ops { // in the order they first appear
		number(op.Router.Hash)
		for _, m := range messageHashes.FindAllStringSubmatch(op.Message, -1) {
			if h := cmp.Or(m[1], m[3]); slices.ContainsFunc(programs, func(p string) bool { return strings.HasPrefix(strings.TrimPrefix(p, "sha256:"), h) }) {
				number(h)
			}
		}
	}
	for _, h := range programs { // after those that appear, so as not to shift them
		number(h)
	}
	rename := func(text string) string {
		return messageHashes.ReplaceAllStringFunc(text, func(m string) string {
			sub := messageHashes.FindStringSubmatch(m)
			hex := cmp.Or(sub[1], sub[3])
			v, ok := known[hex[:min(12, len(hex))]]
			switch {
			case !ok:
				return m
			case sub[1] != "":
				return v
			}
			return sub[2] + " " + v
		})
	}
	for i := range ops {
		if h := ops[i].Router.Hash; h != "" {
			ops[i].Router.Hash = known[strings.TrimPrefix(h, "sha256:")[:12]]
		}
		ops[i].Message = rename(ops[i].Message)
	}
	dir := absPath(filepath.Dir(s.File))
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
		if rel, err := filepath.Rel(dir, absPath(p)); err == nil {
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

// messageHashes finds router hashes in messages: in full, or the 12 digits
// routers print after the language.
var messageHashes = regexp.MustCompile(`sha256:([0-9a-f]{64})|\b(lua|expr) ([0-9a-f]{12})\b`)

// absPath is p made absolute, or p if that fails.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
