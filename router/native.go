package router

import (
	"context"
	"fmt"
	"slices"

	"github.com/aion-dispatch/dispatch/engine"
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
		c := &in.Candidates[i]
		if slices.Contains(in.Excluded, c.ID) {
			continue
		}
		if best < 0 || lessLoaded(c.State, in.Candidates[best].State) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	return in.Candidates[best].ID
}

// lessLoaded reports whether a's load is strictly below b's, comparing the
// ratios (in_flight+buffer_depth)/max_in_flight without division. A
// max_in_flight below 1 counts as 1.
func lessLoaded(a, b engine.ConsumerStateView) bool {
	la, lb := int64(a.InFlight+a.BufferDepth), int64(b.InFlight+b.BufferDepth)
	return la*int64(max(b.MaxInFlight, 1)) < lb*int64(max(a.MaxInFlight, 1))
}
