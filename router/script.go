package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
)

// DefaultTimeout is the deadline of one script call when a channel sets none.
const DefaultTimeout = 50 * time.Millisecond

// Script is a compiled program bound to its source and a call deadline: the
// [engine.Router] of one channel. It is immutable and safe for concurrent use.
type Script struct {
	prog    *Program
	timeout time.Duration
	version engine.RouterVersion
	loaded  time.Time
	// inline, when set, places run-time errors in the file the script is
	// written inside (see NewInlineScript).
	inline *inlinePlace

	// calls bounds the calls running at once (Limits.MaxConcurrentCalls);
	// nil for no bound. solo admits one call at a time while the script
	// keeps timing out: strikes rises by strikeTimeout on a timeout and
	// falls by one on any other outcome, never below 0 nor above
	// strikeMax, and calls run alone while it is strikeSolo or more.
	calls   chan struct{}
	solo    chan struct{}
	strikes atomic.Int32
}

// The strikes of a script: two timeouts in a row make it run alone, and it
// stays alone while more than about one call in five times out.
const (
	strikeTimeout = 4
	strikeSolo    = 2 * strikeTimeout
	strikeMax     = 4 * strikeTimeout
)

// NewScript returns a router that runs prog, loaded from source (a path, or
// a name for inline scripts), with each call bounded by timeout (0 means
// [DefaultTimeout]).
func NewScript(prog *Program, source string, timeout time.Duration) *Script {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	s := &Script{
		prog:    prog,
		timeout: timeout,
		version: engine.RouterVersion{Lang: string(prog.lang), Hash: prog.hash, Source: source},
		loaded:  time.Now(),
	}
	if n := prog.limits.concurrentCalls(); n > 0 {
		s.calls = make(chan struct{}, n)
	}
	s.solo = make(chan struct{}, 1)
	return s
}

// inlinePlace is where a script written inside another file starts: its
// line n is line n+lineOffset of file.
type inlinePlace struct {
	file       string
	lineOffset int
}

// NewInlineScript is [NewScript] for a script written inside another file
// (a config's inline source): its run-time errors name file, and the line
// of file (a line of the script plus lineOffset), as its compile errors
// do. They have no column: the script's columns are not the file's.
func NewInlineScript(prog *Program, source string, timeout time.Duration, file string, lineOffset int) *Script {
	s := NewScript(prog, source, timeout)
	s.inline = &inlinePlace{file: file, lineOffset: lineOffset}
	return s
}

// Version returns the language, hash and source of the script.
func (s *Script) Version() engine.RouterVersion { return s.version }

// LoadedAt returns when the script was bound (NewScript was called).
func (s *Script) LoadedAt() time.Time { return s.loaded }

// Timeout returns the deadline of one call.
func (s *Script) Timeout() time.Duration { return s.timeout }

// Select implements [engine.Router]: it runs the script on the candidates and
// checks that what came back names one of them. Compile-time and runtime
// errors are [*ScriptError]s; a script that runs past its deadline fails
// with [ErrScriptTimeout]; a result that names no candidate with
// [ErrBadDecision].
func (s *Script) Select(ctx context.Context, in engine.Selection) (engine.Decision, error) {
	if err := ctx.Err(); err != nil {
		return engine.Decision{}, err
	}
	res, err := s.run(ctx, &in)
	if err != nil {
		return engine.Decision{Version: s.version}, err
	}
	if res.None {
		return engine.Decision{Version: s.version}, nil
	}
	if !slices.ContainsFunc(in.Candidates, func(w engine.Worker) bool { return w.ID() == res.ID }) {
		why := "which is not a candidate"
		if slices.Contains(in.Excluded, res.ID) {
			why = "which is excluded"
		}
		return engine.Decision{Version: s.version}, s.badDecision(res.Describe()+", "+why, in)
	}
	return engine.Decision{WorkerID: res.ID, Version: s.version}, nil
}

func (s *Script) run(ctx context.Context, sel *engine.Selection) (res call.Result, err error) {
	solo, err := s.admit(ctx)
	if err != nil {
		if errors.Is(err, ErrScriptThrottled) {
			err = &CallError{Version: s.version, Err: err}
		}
		return res, err
	}
	defer s.release(solo)
	defer func() {
		if r := recover(); r != nil {
			err = &ScriptError{Lang: s.prog.lang, File: s.version.Source, Message: fmt.Sprintf("interpreter panic: %v", r)}
		}
	}()
	if s.prog.expr != nil { // by address: no copy of sel per call
		res, err = s.prog.runExpr(ctx, sel, s.timeout)
	} else {
		res, err = s.prog.run(ctx, sel, s.timeout)
	}
	s.strike(errors.Is(err, ErrScriptTimeout))
	if err != nil {
		return res, s.wrap(err)
	}
	if !res.None && res.ID == "" {
		return res, s.badDecision(res.Describe(), *sel)
	}
	return res, nil
}

// admit waits until the call may run: fewer than Limits.MaxConcurrentCalls
// of the script's calls are running, and none at all while it keeps timing
// out. It reports whether the call holds the solo place (pass it to
// release), or returns ctx's error. A healthy script without a bound pays
// one atomic load.
func (s *Script) admit(ctx context.Context) (solo bool, err error) {
	if s.calls != nil {
		if err := acquire(ctx, s.calls); err != nil {
			return false, err
		}
	}
	if s.strikes.Load() < strikeSolo {
		return false, nil
	}
	// Alone: wait for the call running, but no longer than a call may
	// run, so that a channel whose calls keep timing out sheds its load
	// instead of queueing it without bound.
	wait, cancel := context.WithTimeout(ctx, s.timeout)
	err = acquire(wait, s.solo)
	cancel()
	if err != nil {
		if s.calls != nil {
			<-s.calls
		}
		if ctx.Err() == nil {
			err = fmt.Errorf("%w: its calls keep timing out, so it runs one at a time, and this call waited its whole %s deadline for its turn",
				ErrScriptThrottled, s.timeout)
		}
		return false, err
	}
	return true, nil
}

// release gives back what admit took.
func (s *Script) release(solo bool) {
	if solo {
		<-s.solo
	}
	if s.calls != nil {
		<-s.calls
	}
}

// strike counts a call's outcome: timedOut or not.
func (s *Script) strike(timedOut bool) {
	for {
		n := s.strikes.Load()
		next := max(n-1, 0)
		if timedOut {
			next = min(n+strikeTimeout, strikeMax)
		}
		if next == n || s.strikes.CompareAndSwap(n, next) {
			return
		}
	}
}

// acquire takes a place in sem, or fails when ctx ends first.
func acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wrap names the script in a runtime error.
func (s *Script) wrap(err error) error {
	if errors.Is(err, ErrScriptTimeout) {
		return &CallError{Version: s.version, Err: fmt.Errorf("%w after %s", ErrScriptTimeout, s.timeout)}
	}
	var se *ScriptError
	if errors.As(err, &se) {
		switch {
		case s.inline != nil:
			se.File, se.Column = s.inline.file, 0
			if se.Line > 0 {
				se.Line += s.inline.lineOffset
			}
		case se.File == "":
			se.File = s.version.Source
		}
		// Which version failed, as the journal's worker_selected lines name
		// the versions that chose: a version that only ever fails has no
		// such line.
		se.Version = s.version
	}
	return err
}

func (s *Script) badDecision(got string, in engine.Selection) error {
	ids := make([]string, len(in.Candidates))
	for i, w := range in.Candidates {
		ids[i] = w.ID()
	}
	return &CallError{Version: s.version, Returned: fmt.Sprintf("%s; candidates: [%s]", got, strings.Join(ids, ", ")), Err: ErrBadDecision}
}

// VersionText is how messages name a version: "LANG HASH12", the language
// and the first 12 hex digits of the hash.
func VersionText(v engine.RouterVersion) string { return v.Lang + " " + shortHash(v.Hash) }

// shortHash returns the first 12 hex digits of a "sha256:…" hash.
func shortHash(h string) string {
	h = strings.TrimPrefix(h, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}
