package luart

import (
	"math/rand/v2"
	"slices"

	lua "github.com/yuin/gopher-lua"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/pick"
)

// The dispatch table's helpers, and math.random, bound to the state: each
// reads the call's input and chooses through package pick, as the router's
// exported helpers and the expr runtime do.

func (st *luaState) leastLoaded(L *lua.LState) int {
	if L.Get(1) == st.cands.list { // read the selection's workers in place
		ws := st.in.Sel.Candidates
		var tag string
		byTag := L.GetTop() >= 2
		if byTag {
			tag = L.CheckString(2)
		}
		i := pick.LeastLoadedWorkers(ws, tag, byTag)
		if i < 0 {
			L.Push(lua.LNil)
		} else {
			L.Push(lua.LString(ws[i].ID()))
		}
		return 1
	}
	views, _ := st.list(L, 1)
	if L.GetTop() >= 2 { // least_loaded(list, tag)
		return st.pushChoice(L, views, pick.LeastLoadedWithTag(views, L.CheckString(2)))
	}
	return st.pushChoice(L, views, pick.LeastLoaded(views))
}

func (st *luaState) withTag(L *lua.LState) int {
	views, slots := st.list(L, 1)
	tag := L.CheckString(2)
	// The tags are read in place (slices.Contains, as HasAffinity does):
	// HasAffinity's value receiver copies each view onto the stack, and
	// compiled in this package that copy stalled the loads after it,
	// making with_tag twice as slow (BenchmarkDecision, lua-helpers-composed).
	n := 0
	for i := range views {
		if slices.Contains(views[i].Tags, tag) {
			n++
		}
	}
	out := &luaList{views: make([]engine.ConsumerStateView, 0, n), slots: make([]int, 0, n)}
	for i := range views {
		if slices.Contains(views[i].Tags, tag) {
			out.views = append(out.views, views[i])
			if slots != nil {
				out.slots = append(out.slots, slots[i])
			} else {
				out.slots = append(out.slots, i)
			}
		}
	}
	L.Push(st.userdata(out, st.listMT))
	return 1
}

func (st *luaState) rendezvous(L *lua.LState) int {
	views, _ := st.list(L, 1)
	return st.pushChoice(L, views, pick.Rendezvous(views, L.CheckString(2)))
}

func (st *luaState) p2c(L *lua.LState) int {
	views, _ := st.list(L, 1)
	return st.pushChoice(L, views, pick.P2C(views, st.rand()))
}

func (st *luaState) p2cEWMA(L *lua.LState) int {
	views, _ := st.list(L, 1)
	return st.pushChoice(L, views, pick.P2CEWMA(views, st.rand()))
}

func (st *luaState) leastLatency(L *lua.LState) int {
	if L.Get(1) == st.cands.list { // read the selection's workers in place
		ws := st.in.Sel.Candidates
		if i := pick.LeastLatencyWorkers(ws); i >= 0 {
			L.Push(lua.LString(ws[i].ID()))
		} else {
			L.Push(lua.LNil)
		}
		return 1
	}
	views, _ := st.list(L, 1)
	return st.pushChoice(L, views, pick.LeastLatency(views))
}

// healthy is with_tag's twin: a derived list of the candidates whose
// error_rate is at most argument 2, which must be a number (a numeric
// string is refused, as the checker refuses it).
func (st *luaState) healthy(L *lua.LState) int {
	views, slots := st.list(L, 1)
	n, ok := L.Get(2).(lua.LNumber)
	if !ok {
		L.TypeError(2, lua.LTNumber)
	}
	limit := float64(n)
	count := 0
	for i := range views {
		if views[i].ErrorRate <= limit {
			count++
		}
	}
	out := &luaList{views: make([]engine.ConsumerStateView, 0, count), slots: make([]int, 0, count)}
	for i := range views {
		if views[i].ErrorRate <= limit {
			out.views = append(out.views, views[i])
			if slots != nil {
				out.slots = append(out.slots, slots[i])
			} else {
				out.slots = append(out.slots, i)
			}
		}
	}
	L.Push(st.userdata(out, st.listMT))
	return 1
}

func (st *luaState) random(L *lua.LState) int {
	L.Push(lua.LNumber(st.rand().Float64()))
	return 1
}

// rand returns the decision's random source, seeding it on first use.
func (st *luaState) rand() *rand.Rand {
	if !st.seeded {
		pick.Seed(st.pcg, st.in.Sel.ConversationID, st.in.Sel.Attempt)
		st.seeded = true
	}
	return st.rng
}

// mathRandom is math.random drawing from the decision's seeded source.
func (st *luaState) mathRandom(L *lua.LState) int {
	switch L.GetTop() {
	case 0:
		L.Push(lua.LNumber(st.rand().Float64()))
	case 1:
		m := L.CheckInt(1)
		if m < 1 {
			L.ArgError(1, "interval is empty")
		}
		L.Push(lua.LNumber(1 + st.rand().IntN(m)))
	default:
		m, n := L.CheckInt(1), L.CheckInt(2)
		if m > n {
			L.ArgError(2, "interval is empty")
		}
		L.Push(lua.LNumber(m + st.rand().IntN(n-m+1)))
	}
	return 1
}
