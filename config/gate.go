package config

import (
	"context"
	"errors"
	"fmt"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// GateFunc is a reload gate: given a channel as a reload would put it in
// service (its new routing compiled) and the config file it comes from, it
// runs the channel's router over decisions and refuses the version with an
// error, or says what the version would change. (*node.Node).Gate is the
// one `dispatch run` uses: over the channel's recent decisions.
type GateFunc func(ctx context.Context, ch Channel, file string) (router.GateReport, error)

// Gate runs the channel's router, as file would put it in service, over
// recent (the channel's recent decisions), or over decisions made up from
// its configured workers when recent is empty ([router.SyntheticSamples]).
// A call that errors, times out or returns an id that is not a candidate
// refuses the version
// with a *router.GateError.
func (c Channel) Gate(ctx context.Context, file string, recent []router.Sample) (router.GateReport, error) {
	synthetic := len(recent) == 0
	if synthetic {
		recent = router.SyntheticSamples(c.Name, c.WorkerViews())
	}
	return router.Gate(ctx, c.Router(file), recent, synthetic)
}

// WorkerViews returns the channel's configured workers as a router sees
// them, idle: id, capacity, tags and labels.
func (c Channel) WorkerViews() []engine.ConsumerStateView {
	out := make([]engine.ConsumerStateView, len(c.Workers))
	for i, w := range c.Workers {
		out[i] = engine.ConsumerStateView{ID: w.ID, MaxInFlight: w.MaxInFlight, Tags: w.Tags, Labels: w.Labels}
	}
	return out
}

// Gate runs the reload gate on every channel of the config, over recent(ch)
// or, where that is empty or recent is nil, over synthetic decisions from
// the channel's workers: what `dispatch validate` checks. The error lists
// every channel refused, as [Errors] placed at the failing script line, the
// script, or the channel in the config.
func (c *Config) Gate(ctx context.Context, recent func(engine.ChannelName) []router.Sample) ([]Gated, error) {
	var gated []Gated
	var errs Errors
	for _, ch := range c.Channels {
		var samples []router.Sample
		if recent != nil {
			samples = recent(ch.Name)
		}
		g := Gated{Channel: ch.Name, Source: ch.Routing.SourceName(ch, c.File), Version: 1}
		rep, err := ch.Gate(ctx, c.File, samples)
		if err != nil {
			errs = append(errs, ch.Refusal(c.File, err))
			continue
		}
		g.Report = rep
		gated = append(gated, g)
	}
	if len(errs) > 0 {
		errs.sort()
		return gated, errs
	}
	return gated, nil
}

// Refusal places the reload gate's refusal of the channel's routing (err,
// usually a *router.GateError), the channel coming from the config file:
// at the script line that failed when it is known, else at the script
// file, or at the channel in the config for an inline script.
func (c Channel) Refusal(file string, err error) *Error {
	e := &Error{File: file, Line: c.Pos.Line, Column: c.Pos.Column, Err: err}
	if p := c.Routing.Path; p != "" {
		e.File, e.Line, e.Column = p, 0, 0
	}
	cause, where := err, ""
	var ge *router.GateError
	if errors.As(err, &ge) {
		cause, where = ge.Err, ", on "+ge.Case()
	}
	msg := cause.Error()
	var se *router.ScriptError
	switch ce, _ := cause.(*router.CallError); {
	case errors.As(cause, &se) && se.Line > 0 && c.Routing.Path != "":
		e.Line, e.Column, msg = se.Line, se.Column, se.Summary()
	case se != nil:
		msg = se.Short() // one line: no source line and caret in the middle
	case ce != nil && ce.Version.Source == c.Routing.SourceName(c, file):
		msg = ce.Brief() // "lua abc123 returned …": the source is said already
	}
	e.Msg = fmt.Sprintf("%s: %v: %s%s", c.Name.Short(), router.ErrRefused, msg, where)
	return e
}
