package peers

import (
	"context"
	"fmt"

	"github.com/aion-dispatch/dispatch/engine"
	lua "github.com/yuin/gopher-lua"
)

// gopherLuaFlatSrc is the policy over flat arrays: free[i] and tagged[i]
// for i = 1..n; it returns the chosen index, 0 for none.
const gopherLuaFlatSrc = `function route(free, tagged, n)
  local best, bestFree, bestTagged = 0, 0, false
  for i = 1, n do
    local f = free[i]
    if f > 0 then
      local t = tagged[i]
      if best == 0 or (t and not bestTagged) or (t == bestTagged and f > bestFree) then
        best, bestFree, bestTagged = i, f, t
      end
    end
  end
  return best
end`

// GopherLuaFlat runs the policy in gopher-lua used directly, not through
// the project's router: one state, two tables reused from call to call and
// filled with each candidate's free slots and whether it carries [Tag],
// and the id looked up in Go from the returned index. It is the hand-tuned
// floor of a Lua router, without a sandbox, pooling or deadlines.
type GopherLuaFlat struct {
	l            *lua.LState
	route        lua.LValue
	free, tagged *lua.LTable
}

// NewGopherLuaFlat compiles the policy into a fresh state.
func NewGopherLuaFlat() (*GopherLuaFlat, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	if err := l.DoString(gopherLuaFlatSrc); err != nil {
		l.Close()
		return nil, err
	}
	return &GopherLuaFlat{l: l, route: l.GetGlobal("route"), free: l.NewTable(), tagged: l.NewTable()}, nil
}

// Choose implements [Chooser].
func (g *GopherLuaFlat) Choose(_ context.Context, in engine.Selection) (string, error) {
	for i := range in.Candidates {
		s := &in.Candidates[i].State
		g.free.RawSetInt(i+1, lua.LNumber(s.Available()))
		g.tagged.RawSetInt(i+1, lua.LBool(s.HasAffinity(Tag)))
	}
	if err := g.l.CallByParam(lua.P{Fn: g.route, NRet: 1, Protect: true},
		g.free, g.tagged, lua.LNumber(len(in.Candidates))); err != nil {
		return "", err
	}
	ret := g.l.Get(-1)
	g.l.Pop(1)
	n, ok := ret.(lua.LNumber)
	if !ok || int(n) < 0 || int(n) > len(in.Candidates) {
		return "", fmt.Errorf("gopher-lua: route returned %v", ret)
	}
	if n == 0 {
		return "", nil
	}
	return in.Candidates[int(n)-1].ID(), nil
}
