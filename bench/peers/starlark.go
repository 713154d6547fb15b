package peers

import (
	"context"
	"fmt"

	"github.com/aion-dispatch/dispatch/engine"
	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
)

// starlarkSrc is the policy in Starlark over a list of candidate structs.
const starlarkSrc = `
def route(candidates):
    best = None
    best_free = 0
    best_tagged = False
    for c in candidates:
        free = c.max_in_flight - c.in_flight
        if free <= 0:
            continue
        tagged = "gpu" in c.tags
        if best == None or (tagged and not best_tagged) or (tagged == best_tagged and free > best_free):
            best, best_free, best_tagged = c, free, tagged
    return best.id if best != None else None
`

// Starlark runs the policy in go.starlark.net: each call builds a list of
// structs (id, in_flight, max_in_flight, buffer_depth, tags as a tuple)
// and calls route with it on one reused thread.
type Starlark struct {
	thread *starlark.Thread
	route  starlark.Callable
}

// NewStarlark compiles the policy.
func NewStarlark() (*Starlark, error) {
	thread := &starlark.Thread{Name: "peers"}
	globals, err := starlark.ExecFileOptions(&syntax.FileOptions{}, thread, "peers.star", starlarkSrc, nil)
	if err != nil {
		return nil, err
	}
	route, ok := globals["route"].(starlark.Callable)
	if !ok {
		return nil, fmt.Errorf("starlark: no function route")
	}
	return &Starlark{thread: thread, route: route}, nil
}

// Choose implements [Chooser].
func (s *Starlark) Choose(_ context.Context, in engine.Selection) (string, error) {
	cands := make([]starlark.Value, len(in.Candidates))
	for i := range in.Candidates {
		v := &in.Candidates[i].State
		tags := make(starlark.Tuple, len(v.Tags))
		for j, t := range v.Tags {
			tags[j] = starlark.String(t)
		}
		cands[i] = starlarkstruct.FromStringDict(starlarkstruct.Default, starlark.StringDict{
			"id":            starlark.String(in.Candidates[i].ID()),
			"in_flight":     starlark.MakeInt(v.InFlight),
			"max_in_flight": starlark.MakeInt(v.MaxInFlight),
			"buffer_depth":  starlark.MakeInt(v.BufferDepth),
			"tags":          tags,
		})
	}
	ret, err := starlark.Call(s.thread, s.route, starlark.Tuple{starlark.NewList(cands)}, nil)
	if err != nil {
		return "", err
	}
	switch ret := ret.(type) {
	case starlark.String:
		return string(ret), nil
	case starlark.NoneType:
		return "", nil
	default:
		return "", fmt.Errorf("starlark: route returned %s", ret.Type())
	}
}
