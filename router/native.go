package router

import (
	"context"
	"fmt"
	"slices"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/pick"
)

// Policy is a routing policy written in Go: it returns the id of the chosen
// candidate, or "" for none.
type Policy func(in engine.Selection) string

// Native is an [engine.Router] that runs a Go [Policy]. Its decisions carry
// the version {lang: "go", source: name}.
type Native struct {
	policy  Policy
	version engine.RouterVersion
}

// NewNative returns a router that runs policy under the given name.
func NewNative(name string, policy Policy) *Native {
	return &Native{policy: policy, version: engine.RouterVersion{Lang: "go", Source: name}}
}

// Select implements [engine.Router].
// A panicking policy is an error, not a crash.
func (n *Native) Select(ctx context.Context, in engine.Selection) (d engine.Decision, err error) {
	if err := ctx.Err(); err != nil {
		return engine.Decision{}, err
	}
	defer func() {
		if r := recover(); r != nil {
			d, err = engine.Decision{Version: n.version}, fmt.Errorf("policy %s panicked: %v", n.version.Source, r)
		}
	}()
	return engine.Decision{WorkerID: n.policy(in), Version: n.version}, nil
}

// LeastLoaded chooses the candidate with the lowest load, where load is
// (in_flight + buffer_depth) / max_in_flight; ties go to the earliest in pool
// order. Excluded ids are skipped even if the host left them in.
func LeastLoaded(in engine.Selection) string {
	best := -1
	for i := range in.Candidates {
		c := &in.Candidates[i].State
		if slices.Contains(in.Excluded, c.ID) {
			continue
		}
		if best < 0 || pick.LessLoaded(c, &in.Candidates[best].State) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return in.Candidates[best].ID()
}
