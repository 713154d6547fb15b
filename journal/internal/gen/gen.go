// Package gen generates journals of any size for benchmarks and tests: the
// stories of real dispatches (the engine's dispatcher over simulated workers
// that answer, fail, exit or time out), interleaved as concurrent
// conversations interleave in a live journal. The output is deterministic
// for a given Options.
package gen

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
)

// Options shape a generated journal.
type Options struct {
	// Bytes is the size to reach: no conversation opens once this many
	// bytes are out, and the open ones are finished. The journal ends a
	// little past it.
	Bytes int64
	// Open is how many conversations are open at once (default 64).
	Open int
	// Activities is the most activities one workflow dispatches, one after
	// the other (default 4).
	Activities int
	// Seed seeds every random choice.
	Seed uint64
}

// stepTime is how far the clock moves per line.
const stepTime = 37 * time.Microsecond

// timeoutAfter is the start-to-close of a request meant to time out: it
// expires at once, so generating it costs no waiting.
const timeoutAfter = time.Nanosecond

// New returns a reader of a generated journal: every line is complete and
// every conversation is closed by the end, so the journal checks clean.
func New(opts Options) io.Reader {
	if opts.Open <= 0 {
		opts.Open = 64
	}
	if opts.Activities <= 0 {
		opts.Activities = 4
	}
	g := &generator{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, 0x6a6f75726e616c)),
		now: time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC), slots: make([]slot, opts.Open)}
	chs, err := channels()
	if err != nil {
		return errReader{err}
	}
	g.world = &world{g: g, channels: chs}
	d, err := engine.NewDispatcher(engine.Options{Pool: g.world, Router: g.world, Conversations: g.world,
		Recorder: &g.rec, IDs: g.world})
	if err != nil {
		return errReader{err}
	}
	g.d = d
	return g
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

type generator struct {
	opts    Options
	rng     *rand.Rand
	world   *world
	d       *engine.Dispatcher
	rec     collector
	slots   []slot
	buf     []byte // lines not yet read
	off     int
	written int64
	seq     uint64
	now     time.Time
	nextWF  int
	err     error
}

// slot is one conversation open in the journal: the lines of its dispatch
// not yet written, and the workflow it belongs to.
type slot struct {
	ops      []engine.Operation
	workflow string
	channel  int
	left     int // activities the workflow still dispatches after this one
}

// Read implements io.Reader.
func (g *generator) Read(p []byte) (int, error) {
	for g.off == len(g.buf) {
		if g.err != nil {
			return 0, g.err
		}
		g.buf, g.off = g.buf[:0], 0
		for len(g.buf) < 32<<10 && g.err == nil {
			g.err = g.line()
		}
	}
	n := copy(p, g.buf[g.off:])
	g.off += n
	return n, nil
}

// line appends the next line, or returns io.EOF when every conversation is
// closed past the size.
func (g *generator) line() error {
	more := g.written < g.opts.Bytes
	// A random open conversation takes the next step; past the size, the
	// open ones are finished in turn.
	i := g.rng.IntN(len(g.slots))
	if !more {
		i = -1
		for j := range g.slots {
			if len(g.slots[j].ops) > 0 {
				i = j
				break
			}
		}
		if i < 0 {
			return io.EOF
		}
	}
	s := &g.slots[i]
	if len(s.ops) == 0 {
		if err := g.dispatch(s); err != nil {
			return err
		}
	}
	op := s.ops[0]
	s.ops = s.ops[1:]
	g.seq++
	g.now = g.now.Add(stepTime)
	op.Seq, op.Time = g.seq, g.now
	start := len(g.buf)
	var err error
	g.buf, err = journal.AppendLine(g.buf, op)
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	g.buf = append(g.buf, '\n')
	g.written += int64(len(g.buf) - start)
	return nil
}

// dispatch runs the slot's next activity through the dispatcher and keeps
// the operations it recorded.
func (g *generator) dispatch(s *slot) error {
	if s.left == 0 {
		g.nextWF++
		s.workflow = "wf-" + strconv.Itoa(g.nextWF)
		s.channel = g.rng.IntN(len(g.world.channels))
		s.left = g.rng.IntN(g.opts.Activities)
	} else {
		s.left--
	}
	ch := g.world.channels[s.channel]
	req := engine.ActivityRequest{WorkflowID: s.workflow, ActivityType: ch.activity, TaskQueue: ch.name.TaskQueue(),
		Input: engine.Payload{ContentType: "application/json", Data: g.input()}, StartToClose: 30 * time.Second}
	if g.rng.IntN(100) == 0 {
		req.StartToClose = timeoutAfter
	}
	g.rec.ops = nil
	// The outcome is in the journal; a failed dispatch is part of the story.
	_, _ = g.d.Dispatch(context.Background(), ch.name.Namespace(), req)
	if len(g.rec.ops) == 0 {
		return errors.New("gen: a dispatch recorded nothing")
	}
	s.ops = g.rec.ops
	return nil
}

func (g *generator) input() []byte {
	n := g.rng.IntN(100000)
	b := []byte(`{"to":"user-`)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `@example.com","template":"welcome-v3","locale":"en-GB","vars":{"name":"User `...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `","plan":"pro","trial_days":14},"priority":`...)
	b = strconv.AppendInt(b, int64(g.rng.IntN(5)), 10)
	return append(b, '}')
}

func (g *generator) output(req engine.ActivityRequest) []byte {
	b := []byte(`{"message_id":"m-`)
	b = strconv.AppendUint(b, g.rng.Uint64(), 16)
	b = append(b, `","accepted":true,"region":"eu-west-1","latency_ms":`...)
	b = strconv.AppendInt(b, int64(1+g.rng.IntN(400)), 10)
	b = append(b, `,"echo":`...)
	b = append(b, req.Input.Data...)
	return append(b, '}')
}

// collector keeps the operations of the dispatch being generated.
type collector struct{ ops []engine.Operation }

func (c *collector) ReplayOutcome(context.Context, engine.ChannelName, engine.ActivityRequest) (engine.RecordedOutcome, bool, error) {
	return engine.RecordedOutcome{}, false, nil
}

func (c *collector) Record(_ context.Context, op engine.Operation) error {
	c.ops = append(c.ops, op)
	return nil
}

type channel struct {
	name     engine.ChannelName
	activity string
	workers  []engine.ConsumerStateView
}

func channels() ([]channel, error) {
	var out []channel
	for _, c := range []struct {
		queue, activity string
		ids, tags       []string
	}{
		{"email", "send-email", []string{"email-1", "email-2", "email-3", "email-4"}, []string{"eu", "us"}},
		{"render", "render-pdf", []string{"render-eu-1", "render-eu-2", "render-us-1"}, []string{"gpu"}},
		{"checkout", "charge-card", []string{"checkout-1", "checkout-2", "checkout-3", "checkout-4", "checkout-5", "checkout-6"}, []string{"pci"}},
	} {
		name, err := engine.DispatchChannel("prod", c.queue)
		if err != nil {
			return nil, fmt.Errorf("gen: %w", err)
		}
		ch := channel{name: name, activity: c.activity}
		for i, id := range c.ids {
			ch.workers = append(ch.workers, engine.ConsumerStateView{ID: id, MaxInFlight: 4 + 4*(i%2), Tags: []string{c.tags[i%len(c.tags)]}})
		}
		out = append(out, ch)
	}
	return out, nil
}

// world is the pool, router, conversations and ids the generator's
// dispatcher runs against: simulated workers whose load and answers come
// from the generator's random source.
type world struct {
	g        *generator
	channels []channel
	linked   string
	req      engine.ActivityRequest
}

var version = engine.RouterVersion{Lang: "lua", Hash: "sha256:6af9868cb8d7cd0dfd382e597cfa392154c80f40c8ceef71003ff316003a2819",
	Source: "scripts/least_loaded.lua"}

func (w *world) Workers(_ context.Context, name engine.ChannelName, _ engine.ActivityRequest) ([]engine.Worker, error) {
	if w.g.rng.IntN(400) == 0 {
		return nil, nil // nobody subscribed just now: NoWorkersAvailable
	}
	for _, ch := range w.channels {
		if ch.name != name {
			continue
		}
		out := make([]engine.Worker, len(ch.workers))
		for i, v := range ch.workers {
			v.InFlight = w.g.rng.IntN(v.MaxInFlight + 1)
			v.BufferDepth = w.g.rng.IntN(3)
			out[i] = engine.Worker{State: v}
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %s", engine.ErrUnknownChannel, name)
}

// Select picks the least loaded candidate, ties going to a random one.
func (w *world) Select(_ context.Context, in engine.Selection) (engine.Decision, error) {
	best, bestLoad, ties := "", 0, 0
	for _, c := range in.Candidates {
		load := c.State.InFlight + c.State.BufferDepth - c.State.MaxInFlight
		switch {
		case best == "" || load < bestLoad:
			best, bestLoad, ties = c.ID(), load, 1
		case load == bestLoad:
			ties++
			if w.g.rng.IntN(ties) == 0 {
				best = c.ID()
			}
		}
	}
	return engine.Decision{WorkerID: best, Version: version}, nil
}

func (w *world) NextConversationID() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(w.g.rng.Uint32())
	}
	return hex.EncodeToString(b[:])
}

func (w *world) Open(context.Context, string, engine.ChannelName, string) (engine.Conversation, error) {
	return w, nil
}

func (w *world) Link(_ context.Context, wk engine.Worker) error {
	w.linked = wk.ID()
	return nil
}

func (w *world) Send(_ context.Context, msg engine.DispatchRequest) error {
	w.req = msg.Request
	return nil
}

// Receive answers as a worker would: mostly a completed result, sometimes a
// failure or an exit; a request meant to time out waits for its deadline.
func (w *world) Receive(ctx context.Context) (engine.Event, error) {
	if w.req.StartToClose == timeoutAfter {
		<-ctx.Done()
		return engine.Event{}, ctx.Err()
	}
	switch r := w.g.rng.IntN(100); {
	case r < 4:
		return engine.Event{Kind: engine.EventWorkerExited, WorkerID: w.linked, Message: "panic: handler crashed: connection reset by peer"}, nil
	case r < 9:
		return engine.Event{Kind: engine.EventResponse, WorkerID: w.linked,
			Result: engine.Failed("upstream 503: service unavailable, retry later")}, nil
	}
	return engine.Event{Kind: engine.EventResponse, WorkerID: w.linked,
		Result: engine.Completed(engine.Payload{ContentType: "application/json", Data: w.g.output(w.req)})}, nil
}

func (w *world) Close() error { return nil }
