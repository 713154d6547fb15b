package peers

import (
	"context"
	"fmt"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/dop251/goja"
)

// gojaSrc is the policy in JavaScript over an array of candidate objects.
const gojaSrc = `function route(candidates) {
  let best = null, bestFree = 0, bestTagged = false;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i];
    const free = c.max_in_flight - c.in_flight;
    if (free <= 0) continue;
    const tagged = c.tags.includes("gpu");
    if (best === null || (tagged && !bestTagged) || (tagged === bestTagged && free > bestFree)) {
      best = c; bestFree = free; bestTagged = tagged;
    }
  }
  return best === null ? null : best.id;
}`

// Goja runs the policy in goja (JavaScript): each call builds an array of
// plain objects (id, in_flight, max_in_flight, buffer_depth, tags as an
// array) in one reused runtime and calls route with it.
type Goja struct {
	vm    *goja.Runtime
	route goja.Callable
}

// NewGoja compiles the policy into a fresh runtime.
func NewGoja() (*Goja, error) {
	vm := goja.New()
	if _, err := vm.RunString(gojaSrc); err != nil {
		return nil, err
	}
	route, ok := goja.AssertFunction(vm.Get("route"))
	if !ok {
		return nil, fmt.Errorf("goja: no function route")
	}
	return &Goja{vm: vm, route: route}, nil
}

// Choose implements [Chooser].
func (g *Goja) Choose(_ context.Context, in engine.Selection) (string, error) {
	cands := make([]any, len(in.Candidates))
	for i := range in.Candidates {
		v := &in.Candidates[i].State
		tags := make([]any, len(v.Tags))
		for j, t := range v.Tags {
			tags[j] = t
		}
		o := g.vm.NewObject()
		for _, kv := range [...]struct {
			k string
			v any
		}{
			{"id", in.Candidates[i].ID()},
			{"in_flight", v.InFlight},
			{"max_in_flight", v.MaxInFlight},
			{"buffer_depth", v.BufferDepth},
			{"tags", g.vm.NewArray(tags...)},
		} {
			if err := o.Set(kv.k, kv.v); err != nil {
				return "", err
			}
		}
		cands[i] = o
	}
	ret, err := g.route(goja.Undefined(), g.vm.NewArray(cands...))
	if err != nil {
		return "", err
	}
	if goja.IsNull(ret) || goja.IsUndefined(ret) {
		return "", nil
	}
	id, ok := ret.Export().(string)
	if !ok {
		return "", fmt.Errorf("goja: route returned %v", ret)
	}
	return id, nil
}
