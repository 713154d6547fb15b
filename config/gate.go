package config

import (
	"context"

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
// A call that errors, times out or names no candidate refuses the version
// with a *router.GateError.
func (c Channel) Gate(ctx context.Context, file string, recent []router.Sample) (router.GateReport, error) {
	synthetic := len(recent) == 0
	if synthetic {
		recent = router.SyntheticSamples(c.Name, c.WorkerViews())
	}
	return router.Gate(ctx, c.Router(file), recent, synthetic)
}

// WorkerViews returns the channel's configured workers as a router sees
// them, idle: id, capacity and tags.
func (c Channel) WorkerViews() []engine.ConsumerStateView {
	out := make([]engine.ConsumerStateView, len(c.Workers))
	for i, w := range c.Workers {
		out[i] = engine.ConsumerStateView{ID: w.ID, MaxInFlight: w.MaxInFlight, Tags: w.Tags}
	}
	return out
}
