package luart

import (
	"fmt"
	"math"

	lua "github.com/yuin/gopher-lua"

	"github.com/aion-dispatch/dispatch/engine"
)

// The host's values a script reads: the request, the excluded ids, the
// lists helpers derive from the candidates, and iteration over them.

// list reads argument n of a helper as candidates: the candidates argument,
// a helper's result, or a table the script filled with candidates.
func (st *luaState) list(L *lua.LState, n int) ([]engine.ConsumerStateView, []int) {
	switch v := L.Get(n).(type) {
	case *lua.LUserData:
		if l, ok := v.Value.(*luaList); ok {
			return l.views, l.slots
		}
	case *lua.LTable:
		if v == st.cands.list {
			return st.in.Views(), nil
		}
		var outViews []engine.ConsumerStateView
		var slots []int
		for i := 1; ; i++ {
			e := v.RawGetInt(i)
			if e == lua.LNil {
				return outViews, slots
			}
			t, _ := e.(*lua.LTable)
			slot, ok := st.cands.slotOf[t]
			if !ok || slot >= len(st.in.Sel.Candidates) {
				L.ArgError(n, fmt.Sprintf("element %d is not a candidate", i))
			}
			outViews = append(outViews, st.in.View(slot))
			slots = append(slots, slot)
		}
	}
	L.ArgError(n, "candidates expected, got "+describeLua(L.Get(n)))
	return nil, nil
}

func (st *luaState) pushChoice(L *lua.LState, views []engine.ConsumerStateView, i int) int {
	if i < 0 {
		L.Push(lua.LNil)
	} else {
		L.Push(lua.LString(views[i].ID))
	}
	return 1
}

func (st *luaState) listIndex(L *lua.LState) int {
	l := L.CheckUserData(1).Value.(*luaList)
	i, ok := L.Get(2).(lua.LNumber)
	if !ok || float64(i) != math.Trunc(float64(i)) || int(i) < 1 || int(i) > len(l.slots) {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(st.cands.faceOf(st, l.slots[int(i)-1]))
	return 1
}

func (st *luaState) listLen(L *lua.LState) int {
	L.Push(lua.LNumber(len(L.CheckUserData(1).Value.(*luaList).slots)))
	return 1
}

func (st *luaState) candHasTag(L *lua.LState) int {
	t := L.CheckTable(1)
	slot, ok := st.cands.slotOf[t]
	if !ok || slot >= len(st.in.Sel.Candidates) {
		L.ArgError(1, "candidate expected")
	}
	L.Push(lua.LBool(st.in.Sel.Candidates[slot].State.HasAffinity(L.CheckString(2))))
	return 1
}

func (st *luaState) reqIndex(L *lua.LState) int {
	sel := st.in.Sel
	switch L.CheckString(2) {
	case "namespace":
		L.Push(lua.LString(sel.Channel.Namespace()))
	case "task_queue":
		L.Push(lua.LString(sel.Channel.TaskQueue()))
	case "channel":
		L.Push(lua.LString(sel.Channel.String()))
	case "workflow_id":
		L.Push(lua.LString(sel.WorkflowID))
	case "conversation_id":
		L.Push(lua.LString(sel.ConversationID))
	case "attempt":
		L.Push(lua.LNumber(sel.Attempt))
	case "activity_type":
		L.Push(lua.LString(sel.Request.ActivityType))
	case "input_content_type":
		L.Push(lua.LString(sel.Request.Input.ContentType))
	case "input":
		L.Push(lua.LString(sel.Request.Input.Data))
	default:
		L.Push(lua.LNil)
	}
	return 1
}

func (st *luaState) exclIndex(L *lua.LState) int {
	ex := st.in.Sel.Excluded
	i, ok := L.Get(2).(lua.LNumber)
	if !ok || int(i) < 1 || int(i) > len(ex) || float64(i) != math.Trunc(float64(i)) {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(lua.LString(ex[int(i)-1]))
	return 1
}

func (st *luaState) exclLen(L *lua.LState) int {
	L.Push(lua.LNumber(len(st.in.Sel.Excluded)))
	return 1
}

// ipairs iterates tables as usual and the host's lists (candidates,
// excluded) through their index functions.
func (st *luaState) ipairs(L *lua.LState) int {
	v := L.Get(1)
	switch v.(type) {
	case *lua.LTable, *lua.LUserData:
	default:
		L.ArgError(1, "table expected, got "+v.Type().String())
	}
	L.Push(st.ipairsIter)
	L.Push(v)
	L.Push(lua.LNumber(0))
	return 3
}

func (st *luaState) ipairsNext(L *lua.LState) int {
	i := L.CheckInt(2) + 1
	v := L.GetTable(L.Get(1), lua.LNumber(i)) // through __index: proxies read their data
	if v == lua.LNil {
		return 0
	}
	L.Push(lua.LNumber(i))
	L.Push(v)
	return 2
}

// pairs iterates tables; the host's read-only values are walked through to
// the data they show.
func (st *luaState) pairs(L *lua.LState) int {
	v := L.Get(1)
	if _, ok := v.(*lua.LUserData); ok || v == st.cands.list {
		return st.ipairs(L)
	}
	t := L.CheckTable(1)
	if readOnlyData(t) != nil {
		L.Push(st.proxyNextFn)
	} else {
		L.Push(st.next)
	}
	L.Push(t)
	L.Push(lua.LNil)
	return 3
}

// hostTable reports whether t is one of the host's read-only tables.
func (st *luaState) hostTable(t *lua.LTable) bool {
	if mt, ok := t.Metatable.(*lua.LTable); ok {
		return mt.RawGetString("__metatable") != lua.LNil
	}
	return false
}

// readOnlyData returns the data a host proxy reads through to, or nil.
func readOnlyData(t *lua.LTable) *lua.LTable {
	if mt, ok := t.Metatable.(*lua.LTable); ok && mt.RawGetString("__metatable") != lua.LNil {
		data, _ := mt.RawGetString("__index").(*lua.LTable)
		return data
	}
	return nil
}

// proxyNext is next for a host proxy: it walks the data without handing it
// to the script.
func (st *luaState) proxyNext(L *lua.LState) int {
	data := readOnlyData(L.CheckTable(1))
	if data == nil {
		L.ArgError(1, "read-only table expected")
	}
	k, v := data.Next(L.Get(2))
	if k == lua.LNil {
		return 0
	}
	L.Push(k)
	L.Push(v)
	return 2
}
