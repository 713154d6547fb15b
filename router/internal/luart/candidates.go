package luart

import (
	"maps"
	"slices"

	lua "github.com/yuin/gopher-lua"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
)

// luaCandidates is how a state shows the candidates to a script: plain Lua
// tables, so that a loop reads c.in_flight without calling into Go.
//
// The host keeps each candidate's data table from call to call and rewrites
// only the fields that changed, so no script may write to it. A script that
// provably writes only to tables it built itself (see luacheck.Purity) gets the
// data tables themselves, whose metatable refuses new keys. Any other script
// gets empty proxies whose locked metatable reads through to the data and
// refuses every write.
type luaCandidates struct {
	list   *lua.LTable // what the script gets as `candidates`: candidate faces, shown on first access
	direct bool        // faces are the data tables themselves
	st     *luaState
	in     *call.Input
	filled []int // indices of listData filled in the current call
	eager  bool  // the last call read most candidates: show them all up front
	slots  []*luaCandidate
	slotOf map[*lua.LTable]int // candidate face → slot
	nums   []lua.LValue        // boxed small integers, so updates do not allocate
}

// luaCandidate is one reusable candidate slot.
type luaCandidate struct {
	face, data *lua.LTable // face is data itself, or a proxy over it
	tagsData   *lua.LTable // the tags as a list, and each tag as a key set to true
	tagsFace   lua.LValue  // what data.tags holds: tagsData, or a proxy over it
	labelsFace lua.LValue  // what data.labels holds: the labels' table, or a proxy over it
	last       engine.ConsumerStateView
	filled     bool
}

// setTags gives the slot a new tags table holding tags.
func (c *luaCandidates) setTags(s *luaCandidate, tags []string) {
	st := c.st
	L := st.L
	t := L.CreateTable(len(tags), len(tags))
	for i, tag := range tags {
		t.RawSetInt(i+1, lua.LString(tag))
		t.RawSetString(tag, lua.LTrue)
	}
	s.tagsData, s.tagsFace = t, t
	if c.direct {
		t.Metatable = st.refuseNewKeys
		return
	}
	s.tagsFace = st.proxy(t, L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LNumber(t.Len()))
		return 1
	}))
}

// setLabels gives the slot a new labels table holding labels, set in key
// order so that pairs walks them in it.
func (c *luaCandidates) setLabels(s *luaCandidate, labels map[string]string) {
	st := c.st
	t := st.L.CreateTable(0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		t.RawSetString(k, lua.LString(labels[k]))
	}
	s.labelsFace = t
	if c.direct {
		t.Metatable = st.refuseNewKeys
		return
	}
	s.labelsFace = st.proxy(t, nil)
}

func (c *luaCandidates) init(st *luaState, direct bool) {
	L := st.L
	c.direct, c.st = direct, st
	// The list is not a proxy: a read of a shown candidate is a plain array
	// read. It stays read-only all the same: writes to absent keys meet
	// __newindex, and the only keys present are the ones the host wrote this
	// call, which the next call clears or rewrites before the script runs.
	c.list = L.CreateTable(16, 0)
	mt := L.CreateTable(0, 4)
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		L.Push(c.show(st, L.Get(2)))
		return 1
	}))
	mt.RawSetString("__newindex", st.refuseWrite)
	mt.RawSetString("__len", L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LNumber(len(c.in.Sel.Candidates)))
		return 1
	}))
	mt.RawSetString("__metatable", lua.LString("locked"))
	c.list.Metatable = mt
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

// update readies the list for a call over views: what the previous call
// was shown is hidden again, to be shown afresh on first access.
//
// A script that loops over the candidates reads most of them; one that hands
// them to helpers reads none. The state follows what the previous call did:
// after a call that read at least half, the next one gets every candidate
// shown up front, in one pass from Go, rather than one Lua-to-Go call each.
func (c *luaCandidates) update(st *luaState, in *call.Input) {
	n := len(in.Sel.Candidates)
	c.eager = n > 0 && 2*len(c.filled) >= n
	for _, i := range c.filled {
		c.list.RawSetInt(i+1, lua.LNil)
	}
	c.filled = c.filled[:0]
	c.in = in
	if c.eager {
		for i := range n {
			c.show(st, lua.LNumber(i+1))
		}
	}
}

// show returns the proxy of candidate key (1-based), first bringing its data
// up to date, or nil when there is no such candidate.
func (c *luaCandidates) show(st *luaState, key lua.LValue) lua.LValue {
	n, ok := key.(lua.LNumber)
	i := int(n) - 1
	if !ok || float64(n) != float64(i+1) || i < 0 || i >= len(c.in.Sel.Candidates) {
		return lua.LNil
	}
	for len(c.slots) <= i {
		c.slots = append(c.slots, c.newSlot(st, len(c.slots)))
	}
	s := c.slots[i]
	v := c.in.View(i)
	s.set(c, &v)
	c.list.RawSetInt(i+1, s.face)
	c.filled = append(c.filled, i)
	return s.face
}

// faceOf returns the face of candidate slot i, shown for this call.
func (c *luaCandidates) faceOf(st *luaState, i int) *lua.LTable {
	if v := c.list.RawGetInt(i + 1); v != lua.LNil {
		return v.(*lua.LTable)
	}
	return c.show(st, lua.LNumber(i+1)).(*lua.LTable)
}

func (c *luaCandidates) newSlot(st *luaState, i int) *luaCandidate {
	L := st.L
	s := &luaCandidate{data: L.CreateTable(0, 12)}
	if c.direct {
		s.face = s.data
		s.data.Metatable = st.refuseNewKeys
	} else {
		s.face = st.proxy(s.data, nil)
	}
	c.slotOf[s.face] = i
	return s
}

// set writes the fields of v that differ from what the slot holds.
func (s *luaCandidate) set(c *luaCandidates, v *engine.ConsumerStateView) {
	d, old, all := s.data, &s.last, !s.filled
	// The method is written on every show: cheap, and a script cannot have
	// replaced it in a call before.
	d.RawSetString("has_tag", c.st.hasTag)
	defer func() {
		d.RawSetString("tags", s.tagsFace)
		d.RawSetString("labels", s.labelsFace)
	}()
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
	if avail := v.Available(); all || old.Available() != avail {
		d.RawSetString("available", c.num(avail))
	}
	if all || old.LatencyEWMA != v.LatencyEWMA {
		d.RawSetString("latency_ewma", lua.LNumber(v.LatencyEWMA))
	}
	if all || old.LatencyPeakEWMA != v.LatencyPeakEWMA {
		d.RawSetString("latency_peak_ewma", lua.LNumber(v.LatencyPeakEWMA))
	}
	if all || old.ErrorRate != v.ErrorRate {
		d.RawSetString("error_rate", lua.LNumber(v.ErrorRate))
	}
	if all || old.Exits != v.Exits {
		d.RawSetString("exits", c.num(v.Exits))
	}
	if all || !slices.Equal(old.Tags, v.Tags) {
		// A new table, not the old one emptied: a table keeps the order its
		// keys were first set in, and pairs must not show an earlier call's.
		c.setTags(s, v.Tags)
	}
	if all || !maps.Equal(old.Labels, v.Labels) {
		c.setLabels(s, v.Labels)
	}
	s.last, s.filled = *v, true
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
