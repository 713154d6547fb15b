package router

import (
	"slices"

	lua "github.com/yuin/gopher-lua"

	"github.com/aion-dispatch/dispatch/engine"
)

// luaCandidates is how a state shows the candidates to a script: plain Lua
// tables, so that a loop reads c.in_flight without calling into Go.
//
// Each candidate slot is an empty proxy table whose metatable indexes a data
// table the host fills; writes to a proxy fail and the data table is out of
// the script's reach (the metatable is locked), so the host can keep data
// tables from call to call and rewrite only the fields that changed.
type luaCandidates struct {
	list     *lua.LTable // the proxy the script gets as `candidates`
	listData *lua.LTable // its array of candidate proxies
	n        int         // candidates in the current call
	slots    []*luaCandidate
	slotOf   map[*lua.LTable]int // candidate proxy → slot
	nums     []lua.LValue        // boxed small integers, so updates do not allocate
}

// luaCandidate is one reusable candidate slot.
type luaCandidate struct {
	proxy, data         *lua.LTable
	tagsProxy, tagsData *lua.LTable
	last                engine.ConsumerStateView // what data holds
	filled              bool
}

func (c *luaCandidates) init(st *luaState) {
	L := st.L
	c.listData = L.CreateTable(16, 0)
	c.list = st.proxy(c.listData, L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LNumber(c.n))
		return 1
	}))
	c.slotOf = make(map[*lua.LTable]int)
	c.nums = make([]lua.LValue, 1024)
	for i := range c.nums {
		c.nums[i] = lua.LNumber(i)
	}
}

func (c *luaCandidates) num(v int) lua.LValue {
	if v >= 0 && v < len(c.nums) {
		return c.nums[v]
	}
	return lua.LNumber(v)
}

// update shows views to the next call.
func (c *luaCandidates) update(st *luaState, views []engine.ConsumerStateView) {
	for i := range views {
		if i == len(c.slots) {
			c.slots = append(c.slots, c.newSlot(st, i))
		}
		c.slots[i].set(c, st.L, views[i])
		if i >= c.n {
			c.listData.RawSetInt(i+1, c.slots[i].proxy)
		}
	}
	for i := len(views); i < c.n; i++ {
		c.listData.RawSetInt(i+1, lua.LNil)
	}
	c.n = len(views)
}

func (c *luaCandidates) newSlot(st *luaState, i int) *luaCandidate {
	L := st.L
	s := &luaCandidate{data: L.CreateTable(0, 8), tagsData: L.CreateTable(4, 0)}
	s.proxy = st.proxy(s.data, nil)
	s.tagsProxy = st.proxy(s.tagsData, L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LNumber(s.tagsData.Len()))
		return 1
	}))
	s.data.RawSetString("tags", s.tagsProxy)
	s.data.RawSetString("has_tag", st.hasTag)
	c.slotOf[s.proxy] = i
	return s
}

// set writes the fields of v that differ from what the slot holds.
func (s *luaCandidate) set(c *luaCandidates, L *lua.LState, v engine.ConsumerStateView) {
	d, old, all := s.data, s.last, !s.filled
	if all || old.ID != v.ID {
		d.RawSetString("id", lua.LString(v.ID))
	}
	if all || old.InFlight != v.InFlight {
		d.RawSetString("in_flight", c.num(v.InFlight))
	}
	if all || old.MaxInFlight != v.MaxInFlight {
		d.RawSetString("max_in_flight", c.num(v.MaxInFlight))
	}
	if all || old.BufferDepth != v.BufferDepth {
		d.RawSetString("buffer_depth", c.num(v.BufferDepth))
	}
	if all || old.Available() != v.Available() {
		d.RawSetString("available", c.num(v.Available()))
	}
	if all || !slices.Equal(old.Tags, v.Tags) {
		for i, tag := range v.Tags {
			s.tagsData.RawSetInt(i+1, lua.LString(tag))
		}
		for i := len(v.Tags); i < len(old.Tags); i++ {
			s.tagsData.RawSetInt(i+1, lua.LNil)
		}
	}
	s.last, s.filled = v, true
}

// proxy returns an empty table that reads through to data and refuses
// writes; length, when given, answers #.
func (st *luaState) proxy(data *lua.LTable, length *lua.LFunction) *lua.LTable {
	L := st.L
	mt := L.CreateTable(0, 4)
	mt.RawSetString("__index", data)
	mt.RawSetString("__newindex", st.refuseWrite)
	if length != nil {
		mt.RawSetString("__len", length)
	}
	mt.RawSetString("__metatable", lua.LString("locked"))
	p := L.CreateTable(0, 0)
	p.Metatable = mt
	return p
}
