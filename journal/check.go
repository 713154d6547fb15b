package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/aion-dispatch/dispatch/engine"
)

// next lists, for each kind, the kinds that may follow it in one
// conversation. A conversation starts with conversation_opened and ends with
// exactly one conversation_closed, which may follow any step (a failure or a
// cancellation ends it there). An attempt that cannot start at once waits
// in the channel's backlog: activity_waiting, once per wait, before its
// worker_selected (or the close, when the wait ends the conversation); a
// selected worker that did not start the activity sends it back there.
var next = map[engine.OpKind][]engine.OpKind{
	engine.OpConversationOpened: {engine.OpWorkerSelected, engine.OpActivityWaiting},
	engine.OpActivityWaiting:    {engine.OpWorkerSelected},
	// A worker that did not start the activity (a rejected request) sends
	// it back to the backlog: activity_waiting follows its selection.
	engine.OpWorkerSelected:  {engine.OpMessageSent, engine.OpWorkerTimedOut, engine.OpActivityWaiting},
	engine.OpMessageSent:     {engine.OpMessageReceived, engine.OpWorkerExited, engine.OpWorkerTimedOut},
	engine.OpMessageReceived: {},
	engine.OpWorkerExited:    {engine.OpWorkerSelected, engine.OpActivityWaiting},
	engine.OpWorkerTimedOut:  {},
}

// wantState is the state each kind must carry (zero: none, or any final
// state for conversation_closed).
var wantState = map[engine.OpKind]engine.StateName{
	engine.OpConversationOpened: engine.ActivityScheduled,
	engine.OpActivityWaiting:    engine.ActivityScheduled,
	engine.OpWorkerSelected:     engine.ActivityStarted,
	engine.OpWorkerExited:       engine.ActivityFailed,
	engine.OpWorkerTimedOut:     engine.ActivityFailed,
}

// Problem is one inconsistency in a journal.
type Problem struct {
	Line           int
	ConversationID string
	Msg            string
	unfinished     bool
}

// Unfinished reports whether the problem is a conversation that was opened
// and never closed: what a crash leaves, rather than a broken journal.
func (p Problem) Unfinished() bool { return p.unfinished }

// Error implements error: "line N: conversation C: problem".
func (p Problem) Error() string {
	if p.ConversationID == "" {
		return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
	}
	return fmt.Sprintf("line %d: conversation %s: %s", p.Line, p.ConversationID, p.Msg)
}

type convCheck struct {
	last     engine.OpKind
	attempt  int
	opened   int // line
	channel  engine.ChannelName
	workflow string
	worker   string // the worker selected for the current attempt, "" before selection
	exits    []exit // the workers that exited, in order
	reply    engine.ActivityResult
	replyAt  int // the line of message_received, or 0
	waitAt   int // the line of the activity_waiting the conversation is in, or 0
}

// exit is a worker that exited during a conversation, and where.
type exit struct {
	worker string
	line   int
}

// recentCloses is how many of the last closed conversations a Checker
// remembers, to name a step or an opening that comes after a close.
const recentCloses = 1024

// closedConv is a conversation that closed recently: where it opened and
// closed.
type closedConv struct{ opened, closed int }

// Checker checks, one operation at a time, that a journal tells a story the
// dispatcher could have written: seq increasing one by one (a gap is a lost
// line); every conversation opened once, its steps in a legal order with the
// right states and attempts, closed exactly once; each selection of a
// candidate that is neither excluded nor exited; every step of an attempt of
// the worker it went to; a wait in the backlog only before an attempt's
// selection, with no worker and a reason, and a waited only on the
// selection that ends a wait; a close with the worker's answer as its
// result (see docs/journal.md).
//
// Its memory is bounded by what is open at once, not by the journal's
// length: the conversations not yet closed, and the ids of the last 1,024
// closed ones. A step of a conversation closed longer ago than
// that reads as a step before its opening, and its opening again as a new
// conversation.
type Checker struct {
	lastSeq uint64
	convs   map[string]*convCheck // the open conversations
	recent  map[string]closedConv // the last recentCloses closed conversations
	ring    []string              // their ids, in the order they closed
	next    int                   // the ring's oldest entry, once it is full
	found   []Problem             // what Add found
}

// NewChecker returns an empty Checker.
func NewChecker() *Checker {
	return &Checker{convs: make(map[string]*convCheck), recent: make(map[string]closedConv, recentCloses)}
}

func (c *Checker) fail(line int, conv, format string, args ...any) {
	c.found = append(c.found, Problem{Line: line, ConversationID: conv, Msg: fmt.Sprintf(format, args...)})
}

// Add checks op, found at line, and returns what is wrong with it (nil:
// nothing), in the order the problems were found.
func (c *Checker) Add(line int, op engine.Operation) []Problem {
	c.found = nil
	c.add(line, op)
	c.checkSeq(line, op.Seq) // after the conversation's problems, which say more
	return c.found
}

func (c *Checker) add(line int, op engine.Operation) {
	id := op.ConversationID
	if id == "" {
		c.fail(line, "", "%s without a conversation id", op.Kind)
		return
	}
	if want, ok := wantState[op.Kind]; ok && op.State.Name != want {
		c.fail(line, id, "%s with state %s, want %s", op.Kind, stateText(op.State), want)
	}
	cv, open := c.convs[id]
	closed, recent := c.recent[id]
	if op.Kind == engine.OpConversationOpened {
		switch {
		case open:
			c.fail(line, id, "opened again (first at line %d)", cv.opened)
		case recent:
			c.fail(line, id, "opened again (first at line %d, closed at line %d)", closed.opened, closed.closed)
		default:
			c.convs[id] = &convCheck{last: op.Kind, opened: line, channel: op.Channel, workflow: op.WorkflowID}
			if w := op.Request.WorkflowID; w != "" && w != op.WorkflowID {
				c.fail(line, id, "conversation_opened of workflow %s, but its request is of workflow %s", op.WorkflowID, w)
			}
		}
		return
	}
	switch {
	case recent:
		c.fail(line, id, "%s after conversation_closed (line %d)", op.Kind, closed.closed)
		return
	case !open:
		c.fail(line, id, "%s before conversation_opened", op.Kind)
		return
	}
	if op.Channel != cv.channel || op.WorkflowID != cv.workflow {
		c.fail(line, id, "%s on %s for workflow %s, but the conversation opened on %s for workflow %s (line %d)",
			op.Kind, channelText(op.Channel), op.WorkflowID, channelText(cv.channel), cv.workflow, cv.opened)
	}
	if op.Kind == engine.OpConversationClosed {
		c.checkClose(line, id, cv, op)
		c.close(id, closedConv{opened: cv.opened, closed: line})
		return
	}
	if !allowed(cv.last, op.Kind) {
		c.fail(line, id, "%s cannot follow %s", op.Kind, cv.last)
		if op.Kind == engine.OpActivityWaiting {
			// A wait out of place is said once; the steps around it are
			// checked as if it were not there.
			return
		}
	}
	c.checkWaited(line, id, cv, op)
	switch op.Kind {
	case engine.OpWorkerSelected:
		cv.attempt++
	case engine.OpActivityWaiting:
		// It waits to start the next attempt: the first after the opening,
		// the next one after an exit.
		if op.Attempt != cv.attempt+1 {
			c.fail(line, id, "activity_waiting of attempt %d, but it waits to start attempt %d", op.Attempt, cv.attempt+1)
		}
		if op.WorkerID != "" {
			c.fail(line, id, "activity_waiting of worker %s, but a waiting activity has no worker", op.WorkerID)
		}
		if op.Message == "" {
			c.fail(line, id, "activity_waiting without a message saying why it waits")
		}
	}
	if op.Kind != engine.OpActivityWaiting && op.Attempt != cv.attempt {
		c.fail(line, id, "%s of attempt %d during attempt %d", op.Kind, op.Attempt, cv.attempt)
	}
	switch op.Kind {
	case engine.OpActivityWaiting:
		cv.waitAt = line
		cv.worker = ""
	case engine.OpWorkerSelected:
		c.checkSelection(line, id, cv, op)
		cv.worker = op.WorkerID
		cv.waitAt = 0
	case engine.OpMessageSent, engine.OpMessageReceived, engine.OpWorkerExited, engine.OpWorkerTimedOut:
		if cv.worker != "" && op.WorkerID != cv.worker {
			c.fail(line, id, "%s of %s, but attempt %d went to worker %s", op.Kind, workerText(op.WorkerID), cv.attempt, cv.worker)
		}
	}
	switch op.Kind {
	case engine.OpMessageReceived:
		cv.reply, cv.replyAt = op.Result, line
	case engine.OpWorkerExited:
		cv.exits = append(cv.exits, exit{worker: op.WorkerID, line: line})
		cv.worker = ""
	}
	cv.last = op.Kind
}

// checkWaited checks op's waited: only the worker_selected that ends a
// wait has one, and it is not negative.
func (c *Checker) checkWaited(line int, id string, cv *convCheck, op engine.Operation) {
	switch {
	case op.Waited == 0:
	case op.Kind != engine.OpWorkerSelected:
		c.fail(line, id, "%s with waited %s: only a worker_selected that ends a wait has one", op.Kind, op.Waited)
	case op.Waited < 0:
		c.fail(line, id, "worker_selected with a negative waited %s", op.Waited)
	case cv.last != engine.OpActivityWaiting:
		c.fail(line, id, "worker_selected with waited %s, but no activity_waiting before it", op.Waited)
	}
}

// checkSelection checks that a worker_selected chose one of its
// candidates, neither excluded nor exited earlier in the conversation, and
// that its excluded ids are the workers that exited, as the dispatcher
// excludes them.
func (c *Checker) checkSelection(line int, id string, cv *convCheck, op engine.Operation) {
	chosen := op.WorkerID
	if !slices.ContainsFunc(op.Candidates, func(v engine.ConsumerStateView) bool { return v.ID == chosen }) {
		ids := make([]string, len(op.Candidates))
		for i, v := range op.Candidates {
			ids[i] = v.ID
		}
		c.fail(line, id, "worker_selected chose %s, which is not a candidate (candidates: %s)", workerID(chosen), listText(ids))
	}
	i := slices.IndexFunc(cv.exits, func(e exit) bool { return e.worker == chosen })
	switch {
	case slices.Contains(op.Excluded, chosen):
		c.fail(line, id, "worker_selected chose %s, which is excluded", workerID(chosen))
	case i >= 0:
		c.fail(line, id, "worker_selected chose %s, which exited at line %d", workerID(chosen), cv.exits[i].line)
	}
	seen := make(map[string]bool, len(op.Candidates))
	for _, v := range op.Candidates {
		switch {
		case seen[v.ID]:
			c.fail(line, id, "worker_selected has candidate %s twice", workerID(v.ID))
		case slices.Contains(op.Excluded, v.ID):
			c.fail(line, id, "worker_selected has candidate %s, which is excluded (the host removes excluded workers before the router runs)", workerID(v.ID))
		}
		if err := v.CheckObserved(); err != nil {
			c.fail(line, id, "worker_selected: candidate %v", err)
		}
		seen[v.ID] = true
	}
	exited := make([]string, len(cv.exits))
	for i, e := range cv.exits {
		exited[i] = e.worker
	}
	if !slices.Equal(op.Excluded, exited) {
		c.fail(line, id, "worker_selected excludes %s, but the workers that exited are %s", listText(op.Excluded), listText(exited))
	}
}

// checkClose checks a conversation_closed against the steps before it: the
// attempt it names, its worker, and its result, which is the worker's
// answer when there was one.
func (c *Checker) checkClose(line int, id string, cv *convCheck, op engine.Operation) {
	// The dispatcher starts the next attempt when one ends in an exit (and
	// the first after the opening); a close before its selection names it,
	// and so does a close that ends a wait for it.
	between := cv.last == engine.OpConversationOpened || cv.last == engine.OpWorkerExited ||
		cv.last == engine.OpActivityWaiting
	switch want := cv.attempt + btoi(between); {
	case op.Attempt == want:
	case cv.last == engine.OpActivityWaiting:
		c.fail(line, id, "conversation_closed of attempt %d, but the activity_waiting at line %d waits to start attempt %d", op.Attempt, cv.waitAt, want)
	case !between && op.Attempt == cv.attempt+1:
		c.fail(line, id, "conversation_closed of attempt %d, but attempt %d did not end in worker_exited", op.Attempt, cv.attempt)
	case between && cv.attempt > 0:
		c.fail(line, id, "conversation_closed of attempt %d after attempt %d ended in worker_exited (want attempt %d)", op.Attempt, cv.attempt, want)
	default:
		c.fail(line, id, "conversation_closed of attempt %d during attempt %d", op.Attempt, want)
	}
	if !between && op.WorkerID != cv.worker {
		c.fail(line, id, "conversation_closed of %s, but attempt %d went to worker %s", workerText(op.WorkerID), cv.attempt, cv.worker)
	}
	// A wait ends the conversation only when it fails (a timeout, the
	// caller giving up, a failure of the host): an activity that may be
	// tried again.
	if cv.last == engine.OpActivityWaiting && op.State != engine.StateFailed(true) {
		c.fail(line, id, "conversation_closed after activity_waiting (line %d) with state %s, want activity_failed with retry_eligible true",
			cv.waitAt, fullStateText(op.State))
	}
	switch {
	case cv.last == engine.OpMessageReceived:
		// A result too long for a line is dropped, and the message says so.
		lost := op.Result.IsZero() && strings.Contains(op.Message, engine.ErrRecord.Error())
		if !lost && !sameResult(op.Result, cv.reply) {
			c.fail(line, id, "conversation_closed with result %s, but the message_received at line %d has %s",
				resultText(op.Result), cv.replyAt, resultText(cv.reply))
		}
	case !op.Result.IsZero():
		c.fail(line, id, "conversation_closed with result %s, but no message_received", resultText(op.Result))
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sameResult(a, b engine.ActivityResult) bool {
	return a.Status == b.Status && a.Error == b.Error && a.Output.ContentType == b.Output.ContentType &&
		bytes.Equal(a.Output.Data, b.Output.Data)
}

// resultText shows a result in a message: its status and, shortened, its
// output or error.
func resultText(r engine.ActivityResult) string {
	const max = 60
	switch r.Status {
	case 0:
		return "none"
	case engine.StatusFailed:
		return fmt.Sprintf("failed (%s)", shorten(r.Error, max))
	}
	data := r.Output.Data
	cut := len(data) > max
	if cut {
		data = data[:max]
	}
	text := strconv.Quote(string(data))
	if !cut && strings.Contains(r.Output.ContentType, "json") && json.Valid(data) {
		text = string(data)
	}
	if cut {
		text += "..."
	}
	if r.Output.ContentType == "" {
		return fmt.Sprintf("%s (%s)", r.Status, text)
	}
	return fmt.Sprintf("%s (%s %s)", r.Status, r.Output.ContentType, text)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func workerText(id string) string {
	if id == "" {
		return "no worker"
	}
	return "worker " + id
}

func workerID(id string) string {
	if id == "" {
		return `""`
	}
	return id
}

func listText(ids []string) string {
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

// close forgets an open conversation but for its lines, which it keeps
// among the last recentCloses closed ones.
func (c *Checker) close(id string, cc closedConv) {
	delete(c.convs, id)
	if len(c.ring) < recentCloses {
		c.ring = append(c.ring, id)
	} else {
		delete(c.recent, c.ring[c.next])
		c.ring[c.next] = id
		c.next = (c.next + 1) % recentCloses
	}
	c.recent[id] = cc
}

func (c *Checker) checkSeq(line int, seq uint64) {
	if seq == 0 && c.lastSeq == 0 {
		return // a journal without seqs (written by hand)
	}
	switch {
	case seq <= c.lastSeq:
		c.fail(line, "", "seq %d does not increase (previous %d)", seq, c.lastSeq)
	case c.lastSeq != 0 && seq > c.lastSeq+1:
		// A writer numbers its lines one by one, across reopenings too.
		missing := seq - c.lastSeq - 1
		c.fail(line, "", "seq jumps from %d to %d: %d %s missing", c.lastSeq, seq, missing, plural(missing, "line is", "lines are"))
	}
	c.lastSeq = seq
}

func allowed(from, to engine.OpKind) bool {
	for _, k := range next[from] {
		if k == to {
			return true
		}
	}
	return false
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func stateText(s engine.ActivityState) string {
	if s.IsZero() {
		return "none"
	}
	return s.Name.String()
}

// fullStateText shows a state with its retry_eligible, when it has one.
func fullStateText(s engine.ActivityState) string {
	if s.Name == engine.ActivityFailed {
		return fmt.Sprintf("%s (retry_eligible %t)", s.Name, s.RetryEligible)
	}
	return stateText(s)
}

// Open returns how many conversations are open: opened and not closed.
func (c *Checker) Open() int { return len(c.convs) }

// Unfinished returns the conversations opened and not closed so far, as
// problems at the lines that opened them, in line order. At the end of a
// journal they are what a crash leaves (Problem.Unfinished).
func (c *Checker) Unfinished() []Problem {
	out := make([]Problem, 0, len(c.convs))
	for id, cv := range c.convs {
		out = append(out, Problem{Line: cv.opened, ConversationID: id, Msg: "never closed", unfinished: true})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

// channelText names a channel as NS/QUEUE, or says it is missing.
func channelText(ch engine.ChannelName) string {
	if ch.IsZero() {
		return "no channel"
	}
	return ch.Short()
}
