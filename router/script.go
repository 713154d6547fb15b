package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
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
}

// NewScript returns a router that runs prog, loaded from source (a path, or
// a name for inline scripts), with each call bounded by timeout (0 means
// [DefaultTimeout]).
func NewScript(prog *Program, source string, timeout time.Duration) *Script {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Script{
		prog:    prog,
		timeout: timeout,
		version: engine.RouterVersion{Lang: string(prog.lang), Hash: prog.hash, Source: source},
		loaded:  time.Now(),
	}
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
	if res.none {
		return engine.Decision{Version: s.version}, nil
	}
	if !slices.ContainsFunc(in.Candidates, func(w engine.Worker) bool { return w.ID == res.id }) {
		why := "which is not a candidate"
		if slices.Contains(in.Excluded, res.id) {
			why = "which is excluded"
		}
		return engine.Decision{Version: s.version}, s.badDecision(res.describe()+", "+why, in)
	}
	return engine.Decision{WorkerID: res.id, Version: s.version}, nil
}

func (s *Script) run(ctx context.Context, sel *engine.Selection) (res rawResult, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &ScriptError{Lang: s.prog.lang, File: s.version.Source, Message: fmt.Sprintf("interpreter panic: %v", r)}
		}
	}()
	res, err = s.prog.run(ctx, sel, s.timeout)
	if err != nil {
		return res, s.wrap(err)
	}
	if !res.none && res.id == "" {
		return res, s.badDecision(res.describe(), *sel)
	}
	return res, nil
}

// wrap names the script in a runtime error.
func (s *Script) wrap(err error) error {
	if errors.Is(err, ErrScriptTimeout) {
		return fmt.Errorf("%s (%s %s): %w after %s", s.version.Source, s.version.Lang, shortHash(s.version.Hash), ErrScriptTimeout, s.timeout)
	}
	var se *ScriptError
	if errors.As(err, &se) {
		if se.File == "" {
			se.File = s.version.Source
		}
		// Which version failed, as the journal's worker_selected lines name
		// the versions that chose: a version that only ever fails has no
		// such line.
		se.Message += fmt.Sprintf(" (%s %s)", s.version.Lang, shortHash(s.version.Hash))
	}
	return err
}

func (s *Script) badDecision(got string, in engine.Selection) error {
	ids := make([]string, len(in.Candidates))
	for i, w := range in.Candidates {
		ids[i] = w.ID
	}
	return fmt.Errorf("%s (%s %s) returned %s; candidates: [%s]: %w",
		s.version.Source, s.version.Lang, shortHash(s.version.Hash), got, strings.Join(ids, ", "), ErrBadDecision)
}

// shortHash returns the first 12 hex digits of a "sha256:…" hash.
func shortHash(h string) string {
	h = strings.TrimPrefix(h, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}
