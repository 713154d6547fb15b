package peers

import (
	"context"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// Chooser is one implementation of a policy: Choose returns the id of the
// chosen candidate, or "" for none. Peers built here are not safe for
// concurrent use: each holds one interpreter.
type Chooser interface {
	Choose(ctx context.Context, in engine.Selection) (string, error)
}

// RouterChooser asks an [engine.Router] as the engine does.
type RouterChooser struct{ engine.Router }

// Choose implements [Chooser] with the router's Select.
func (r RouterChooser) Choose(ctx context.Context, in engine.Selection) (string, error) {
	d, err := r.Select(ctx, in)
	return d.WorkerID, err
}

// MostFree is the benchmarked policy in Go: among the candidates with a
// free slot, those tagged [Tag] first, the one with the most free slots;
// ties go to the first. It returns "" when no candidate has a free slot.
func MostFree(in engine.Selection) string {
	best, bestFree, bestTagged := -1, 0, false
	for i := range in.Candidates {
		s := &in.Candidates[i].State
		free := s.MaxInFlight - s.InFlight
		if free <= 0 {
			continue
		}
		tagged := s.HasAffinity(Tag)
		if best < 0 || (tagged && !bestTagged) || (tagged == bestTagged && free > bestFree) {
			best, bestFree, bestTagged = i, free, tagged
		}
	}
	if best < 0 {
		return ""
	}
	return in.Candidates[best].ID()
}

// LeastLoadedFirst is, in Go, the simpler policy the project's helpers
// express: dispatch.least_loaded(c, "gpu") or dispatch.least_loaded(c),
// the lowest (in_flight + buffer_depth) / max_in_flight among the tagged
// candidates, else among all, ties to the first, whether or not it has a
// free slot. It is the reference of the helper rows only.
func LeastLoadedFirst(in engine.Selection) string {
	pick := func(byTag bool) int {
		best := -1
		for i := range in.Candidates {
			s := &in.Candidates[i].State
			if byTag && !s.HasAffinity(Tag) {
				continue
			}
			if best < 0 || lessLoaded(*s, in.Candidates[best].State) {
				best = i
			}
		}
		return best
	}
	best := pick(true)
	if best < 0 {
		best = pick(false)
	}
	if best < 0 {
		return ""
	}
	return in.Candidates[best].ID()
}

// lessLoaded compares (in_flight + buffer_depth) / max_in_flight without
// dividing, as the project's helpers do.
func lessLoaded(a, b engine.ConsumerStateView) bool {
	la, lb := int64(a.InFlight+a.BufferDepth), int64(b.InFlight+b.BufferDepth)
	return la*int64(max(b.MaxInFlight, 1)) < lb*int64(max(a.MaxInFlight, 1))
}

// The policy in the project's languages. The loops are what a user would
// write against docs/scripting.md; the helper forms are the simpler
// least-loaded policy.
const (
	LuaLoop = `function route(request, candidates)
  local best, bestFree, bestTagged
  for i = 1, #candidates do
    local c = candidates[i]
    local free = c.available
    if free > 0 then
      local tagged = c.tags.gpu == true
      if best == nil or (tagged and not bestTagged) or (tagged == bestTagged and free > bestFree) then
        best, bestFree, bestTagged = c, free, tagged
      end
    end
  end
  return best and best.id
end`
	ExprLoop = `let room = filter(candidates, .available > 0);
let gpu = filter(room, "gpu" in .tags);
let pool = len(gpu) > 0 ? gpu : room;
len(pool) == 0 ? nil : reduce(pool, #.available > #acc.available ? # : #acc, pool[0]).id`
	LuaHelper  = `function route(request, candidates) return dispatch.least_loaded(candidates, "gpu") or dispatch.least_loaded(candidates) end`
	ExprHelper = `leastLoaded(candidates, "gpu") ?? leastLoaded(candidates)`
)

// NewScript compiles src in lang with the project's compiler and default
// limits, and returns the router the engine would call.
func NewScript(lang router.Lang, name, src string) (*router.Script, error) {
	prog, err := router.NewCompiler(router.Limits{}).Compile(lang, name, []byte(src))
	if err != nil {
		return nil, err
	}
	return router.NewScript(prog, name, time.Second), nil
}
