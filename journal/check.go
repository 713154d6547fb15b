package journal

import (
	"fmt"
	"sort"

	"github.com/aion-dispatch/dispatch/engine"
)

// next lists, for each kind, the kinds that may follow it in one
// conversation. A conversation starts with conversation_opened and ends with
// exactly one conversation_closed, which may follow any step (a failure or a
// cancellation ends it there).
var next = map[engine.OpKind][]engine.OpKind{
	engine.OpConversationOpened: {engine.OpWorkerSelected},
	engine.OpWorkerSelected:     {engine.OpMessageSent, engine.OpWorkerTimedOut},
	engine.OpMessageSent:        {engine.OpMessageReceived, engine.OpWorkerExited, engine.OpWorkerTimedOut},
	engine.OpMessageReceived:    {},
	engine.OpWorkerExited:       {engine.OpWorkerSelected},
	engine.OpWorkerTimedOut:     {},
}

// wantState is the state each kind must carry (zero: none, or any final
// state for conversation_closed).
var wantState = map[engine.OpKind]engine.StateName{
	engine.OpConversationOpened: engine.ActivityScheduled,
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
	last    engine.OpKind
	attempt int
	opened  int // line
	closed  bool
}

// Checker checks, one operation at a time, that a journal tells a legal
// story: seq increasing one by one (a gap is a lost line), every conversation opened once, its steps
// in a legal order with the right states and attempts, closed exactly once.
type Checker struct {
	lastSeq  uint64
	convs    map[string]*convCheck
	problems []Problem
}

// NewChecker returns an empty Checker.
func NewChecker() *Checker { return &Checker{convs: make(map[string]*convCheck)} }

func (c *Checker) fail(line int, conv, format string, args ...any) {
	c.problems = append(c.problems, Problem{Line: line, ConversationID: conv, Msg: fmt.Sprintf(format, args...)})
}

// Add checks op, found at line.
func (c *Checker) Add(line int, op engine.Operation) {
	defer c.checkSeq(line, op.Seq) // after the conversation's problems, which say more
	id := op.ConversationID
	if id == "" {
		c.fail(line, "", "%s without a conversation id", op.Kind)
		return
	}
	if want, ok := wantState[op.Kind]; ok && op.State.Name != want {
		c.fail(line, id, "%s with state %s, want %s", op.Kind, stateText(op.State), want)
	}
	cv, seen := c.convs[id]
	if op.Kind == engine.OpConversationOpened {
		if seen {
			c.fail(line, id, "opened again (first at line %d)", cv.opened)
			return
		}
		c.convs[id] = &convCheck{last: op.Kind, opened: line}
		return
	}
	switch {
	case !seen:
		c.fail(line, id, "%s before conversation_opened", op.Kind)
		return
	case cv.closed:
		c.fail(line, id, "%s after conversation_closed", op.Kind)
		return
	}
	if op.Kind == engine.OpConversationClosed {
		cv.closed, cv.last = true, op.Kind
		return
	}
	if !allowed(cv.last, op.Kind) {
		c.fail(line, id, "%s cannot follow %s", op.Kind, cv.last)
	}
	if op.Kind == engine.OpWorkerSelected {
		cv.attempt++
	}
	if op.Attempt != cv.attempt {
		c.fail(line, id, "%s of attempt %d during attempt %d", op.Kind, op.Attempt, cv.attempt)
	}
	cv.last = op.Kind
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

// Problems returns what was found, with conversations that were opened but
// never closed reported at the line that opened them, in line order.
func (c *Checker) Problems() []Problem {
	out := append([]Problem(nil), c.problems...)
	for id, cv := range c.convs {
		if !cv.closed {
			out = append(out, Problem{Line: cv.opened, ConversationID: id, Msg: "never closed", unfinished: true})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}
