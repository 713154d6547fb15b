package metrics

import (
	"context"
	"errors"
	"strings"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// Router returns an [engine.Router] that times each Select of next and
// returns exactly what next returned.
//
// Every call, failed ones too, is observed in
// dispatch_script_duration_seconds{channel,lang,hash}: lang and hash come
// from the decision's version (hash without its "sha256:" prefix, cut to
// 12 characters, as routing errors show it), and are "" when a failed call
// returned no version. A failed call is counted in
// dispatch_script_errors_total{channel,kind}, kind being the first of
// these that matches the error:
//
//   - "timeout": [router.ErrScriptTimeout] or [context.DeadlineExceeded];
//   - "throttled": [router.ErrScriptThrottled];
//   - "bad_decision": [router.ErrBadDecision];
//   - "script_error": a [*router.ScriptError];
//   - "unknown_channel": [engine.ErrUnknownChannel];
//   - "other": anything else, a cancelled dispatch included.
//
// The channel label is the channel's short form, "namespace/task_queue",
// but "" when next does not serve the channel (unknown_channel), so that
// requests for channels that do not exist create no series.
func (m *Metrics) Router(next engine.Router) engine.Router {
	return &timedRouter{m: m, next: next}
}

// timedRouter is what [Metrics.Router] returns.
type timedRouter struct {
	m    *Metrics
	next engine.Router
}

// Select implements [engine.Router].
func (r *timedRouter) Select(ctx context.Context, in engine.Selection) (engine.Decision, error) {
	start := r.m.now()
	d, err := r.next.Select(ctx, in)
	took := r.m.now().Sub(start)
	version := scriptVersion{lang: d.Version.Lang, hash: shortHash(d.Version.Hash)}
	kind := kindNone
	if err != nil {
		kind = classify(err)
	}
	if kind == kindUnknownChannel {
		// Not a channel of the node's: no series of its own, and none
		// cached.
		r.m.scriptDuration.WithLabelValues("", label(version.lang), label(version.hash)).Observe(took.Seconds())
		r.m.scriptErrors.WithLabelValues("", kind.String()).Inc()
		return d, err
	}
	s := r.m.series(in.Channel)
	r.m.script(s, version).Observe(took.Seconds())
	if kind != kindNone {
		s.scriptErr[kind].Inc()
	}
	return d, err
}

// errorKind is the kind label of dispatch_script_errors_total.
type errorKind int

// The kinds of script errors, in the order classify tries them.
const (
	kindTimeout errorKind = iota
	kindThrottled
	kindBadDecision
	kindScriptError
	kindUnknownChannel
	kindOther
	numErrorKinds

	kindNone errorKind = -1 // no error
)

var errorKindNames = [numErrorKinds]string{
	kindTimeout:        "timeout",
	kindThrottled:      "throttled",
	kindBadDecision:    "bad_decision",
	kindScriptError:    "script_error",
	kindUnknownChannel: "unknown_channel",
	kindOther:          "other",
}

// String returns the label value; "" for kindNone.
func (k errorKind) String() string {
	if k < 0 || k >= numErrorKinds {
		return ""
	}
	return errorKindNames[k]
}

// classify returns the kind of a Select's error.
func classify(err error) errorKind {
	var se *router.ScriptError
	switch {
	case errors.Is(err, router.ErrScriptTimeout), errors.Is(err, context.DeadlineExceeded):
		return kindTimeout
	case errors.Is(err, router.ErrScriptThrottled):
		return kindThrottled
	case errors.Is(err, router.ErrBadDecision):
		return kindBadDecision
	case errors.As(err, &se):
		return kindScriptError
	case errors.Is(err, engine.ErrUnknownChannel):
		return kindUnknownChannel
	}
	return kindOther
}

// shortHash returns the first 12 characters of a content hash after its
// algorithm prefix ("sha256:…").
func shortHash(h string) string {
	if _, digest, ok := strings.Cut(h, ":"); ok {
		h = digest
	}
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}
