package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"sync"

	lua "github.com/yuin/gopher-lua"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/luacheck"
)

// maxArrayIndex caps the array part of every Lua table: t[2e7] = true must
// not allocate twenty million slots. Larger integer keys still work; they go
// to the hash part. gopher-lua only offers this as a package variable, so it
// is set once, before the first state is made.
const maxArrayIndex = 1 << 16

var setArrayIndex sync.Once

// luaState is one sandboxed interpreter of a program, with the objects it
// reuses from call to call.
type luaState struct {
	L      *lua.LState
	ctx    *callContext
	proto  *lua.FunctionProto
	pure   bool
	direct bool           // the chunk writes only to tables it builds (see luacheck.Purity)
	route  *lua.LFunction // for a pure chunk, the route of its one run
	limits Limits
	callIn callInput  // the current call's input
	in     *callInput // &callIn during a call

	pcg    *rand.PCG
	rng    *rand.Rand
	seeded bool // rng is seeded for the current call

	envMT  *lua.LTable // metatable of each call's globals: reads fall through to the sandbox
	listMT *lua.LTable // metatable of derived lists (with_tag results)
	reqMT  *lua.LTable
	exclMT *lua.LTable

	cands  luaCandidates
	reqUD  *lua.LUserData
	exclUD *lua.LUserData

	hasTag        *lua.LFunction
	refuseWrite   *lua.LFunction
	refuseNewKeys *lua.LTable // metatable of tables whose existing keys only the host writes
	ipairsIter    *lua.LFunction
	proxyNextFn   *lua.LFunction
	next          lua.LValue             // the base library's next
	names         map[*lua.LTable]string // the read-only libraries, by the names scripts know them by
}

var errNoRoute = errors.New("the script defines no function route(request, candidates, excluded)")

// luaList is a list a helper derived from the candidates, such as the
// result of with_tag: the candidates' slots, and their views for helpers.
type luaList struct {
	slots []int
	views []engine.ConsumerStateView
}

func (p *luaProgram) newState() (st *luaState, err error) {
	setArrayIndex.Do(func() { lua.MaxArrayIndex = maxArrayIndex })
	L := lua.NewState(lua.Options{
		SkipOpenLibs:    true,
		CallStackSize:   p.limits.callStack(),
		RegistrySize:    1024,
		RegistryMaxSize: p.limits.registryMax(),
		// Grow the value stack in large steps: at the default of 32, a
		// builtin pushing tens of thousands of values copies the stack
		// quadratically, for about a second, past any deadline.
		RegistryGrowStep: 4096,
	})
	defer func() {
		if r := recover(); r != nil {
			L.Close()
			st, err = nil, fmt.Errorf("lua sandbox setup panic: %v", r)
		}
	}()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.BaseLibName, lua.OpenBase},
		{lua.StringLibName, lua.OpenString},
		{lua.TabLibName, lua.OpenTable},
		{lua.MathLibName, lua.OpenMath},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	pcg := rand.NewPCG(0, 0)
	st = &luaState{L: L, ctx: newCallContext(), proto: p.proto, pure: p.pure, direct: p.direct,
		limits: p.limits, pcg: pcg, rng: rand.New(pcg)}
	st.sandbox()
	L.SetContext(st.ctx)
	return st, nil
}

// sandbox strips the globals to the allow-list, caps the functions that can
// allocate without bound, and freezes every library table.
func (st *luaState) sandbox() {
	L := st.L
	G := L.G.Global
	st.next = G.RawGetString("next")
	st.ipairsIter = L.NewFunction(st.ipairsNext)
	st.proxyNextFn = L.NewFunction(st.proxyNext)
	var drop []lua.LValue
	G.ForEach(func(k, _ lua.LValue) {
		if !luacheck.SandboxGlobal(k.String()) {
			drop = append(drop, k)
		}
	})
	for _, k := range drop {
		G.RawSet(k, lua.LNil)
	}
	G.RawSetString("ipairs", L.NewFunction(st.ipairs))
	// tostring of a table or function shows a memory address, which differs
	// from one interpreter to the next; a decision must not depend on it.
	origToString := G.RawGetString("tostring").(*lua.LFunction)
	G.RawSetString("tostring", L.NewFunction(func(L *lua.LState) int {
		v := L.CheckAny(1)
		switch v.Type() {
		case lua.LTTable, lua.LTFunction, lua.LTUserData, lua.LTThread, lua.LTChannel:
			if L.GetMetaField(v, "__tostring") == lua.LNil {
				L.Push(lua.LString(v.Type().String()))
				return 1
			}
		}
		return st.callCapped(L, origToString, "")
	}))
	G.RawSetString("pairs", L.NewFunction(st.pairs))
	G.RawSetString("unpack", L.NewFunction(st.unpack))
	// An interpreter's message that names a table or function names it by
	// its address: what pcall and xpcall's handler see says the type.
	G.RawSetString("pcall", L.NewFunction(st.pcall(G.RawGetString("pcall").(*lua.LFunction))))
	G.RawSetString("xpcall", L.NewFunction(st.xpcall(G.RawGetString("xpcall").(*lua.LFunction))))

	str := G.RawGetString("string").(*lua.LTable)
	origFormat := str.RawGetString("format").(*lua.LFunction)
	str.RawSetString("dump", lua.LNil)
	str.RawSetString("rep", L.NewFunction(st.strRep))
	str.RawSetString("gsub", L.NewFunction(st.strGsub))
	str.RawSetString("find", L.NewFunction(st.strFind))
	str.RawSetString("match", L.NewFunction(st.strMatch))
	str.RawSetString("gmatch", L.NewFunction(st.strGmatch))
	str.RawSetString("format", L.NewFunction(st.strFormat(origFormat)))
	tbl := G.RawGetString("table").(*lua.LTable)
	tbl.RawSetString("concat", L.NewFunction(st.tableConcat))
	// insert, remove and sort write with rawset, past any __newindex: keep
	// them off the host's read-only tables.
	for _, name := range []string{"insert", "remove", "sort"} {
		orig := tbl.RawGetString(name).(*lua.LFunction)
		tbl.RawSetString(name, L.NewFunction(func(L *lua.LState) int {
			if t, ok := L.Get(1).(*lua.LTable); ok && st.hostTable(t) {
				L.RaiseError("table.%s: cannot modify a read-only table", name)
			}
			return st.callCapped(L, orig, "")
		}))
	}
	mth := G.RawGetString("math").(*lua.LTable)
	mth.RawSetString("random", L.NewFunction(st.mathRandom))
	mth.RawSetString("randomseed", lua.LNil)

	st.hasTag = L.NewFunction(st.candHasTag)
	st.refuseWrite = L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("cannot assign to a read-only value")
		return 0
	})
	disp := L.NewTable()
	for name, fn := range map[string]lua.LGFunction{
		"least_loaded": st.leastLoaded,
		"with_tag":     st.withTag,
		"rendezvous":   st.rendezvous,
		"p2c":          st.p2c,
		"random":       st.random,
		"json_decode":  st.jsonDecode,
		"concat":       st.concat,
	} {
		disp.RawSetString(name, L.NewFunction(fn))
	}
	disp.RawSetString("has_tag", st.hasTag)
	// The rewritten chunk calls this for every `..`; the name is not an
	// identifier, so no script can reach or replace it.
	G.RawSetString(concatName, disp.RawGetString("concat"))

	for _, name := range []string{"string", "table", "math"} {
		G.RawSetString(name, st.readOnly(name, G.RawGetString(name).(*lua.LTable)))
	}
	G.RawSetString("dispatch", st.readOnly("dispatch", disp))
	// Strings index the real string table through their shared metatable;
	// lock it so that getmetatable("") cannot reach and change it.
	if mt, ok := L.GetMetatable(lua.LString("")).(*lua.LTable); ok {
		mt.RawSetString("__metatable", lua.LString("locked"))
	}

	// A call's globals are its own table; reads fall through to the sandbox.
	st.envMT = L.NewTable()
	st.envMT.RawSetString("__index", G)
	st.envMT.RawSetString("__metatable", lua.LString("locked"))
	st.listMT = st.lockedMT(L.NewFunction(st.listIndex), L.NewFunction(st.listLen))
	st.reqMT = st.lockedMT(L.NewFunction(st.reqIndex), nil)
	st.exclMT = st.lockedMT(L.NewFunction(st.exclIndex), L.NewFunction(st.exclLen))
	st.refuseNewKeys = L.CreateTable(0, 2)
	st.refuseNewKeys.RawSetString("__newindex", st.refuseWrite)
	st.refuseNewKeys.RawSetString("__metatable", lua.LString("locked"))
	st.cands.init(st, st.direct)
	st.reqUD = st.userdata(nil, st.reqMT)
	st.exclUD = st.userdata(nil, st.exclMT)
}

// lockedMT returns a metatable with __index (and __len when given) that
// scripts can neither read nor replace.
func (st *luaState) lockedMT(index, length lua.LValue) *lua.LTable {
	mt := st.L.NewTable()
	mt.RawSetString("__index", index)
	if length != nil {
		mt.RawSetString("__len", length)
	}
	mt.RawSetString("__newindex", st.L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("cannot assign to a read-only value")
		return 0
	}))
	mt.RawSetString("__metatable", lua.LString("locked"))
	return mt
}

// readOnly returns an empty table that reads through to t and refuses writes.
func (st *luaState) readOnly(name string, t *lua.LTable) *lua.LTable {
	proxy := st.L.NewTable()
	if st.names == nil {
		st.names = make(map[*lua.LTable]string)
	}
	st.names[proxy] = name
	mt := st.L.NewTable()
	mt.RawSetString("__index", t)
	mt.RawSetString("__newindex", st.L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("cannot modify the read-only %s table", name)
		return 0
	}))
	mt.RawSetString("__metatable", lua.LString("locked"))
	st.L.SetMetatable(proxy, mt)
	return proxy
}

func (st *luaState) userdata(v any, mt *lua.LTable) *lua.LUserData {
	ud := st.L.NewUserData()
	ud.Value = v
	ud.Metatable = mt
	return ud
}

// prepare runs the chunk of a pure program once, under the state's context;
// other programs run theirs before each call.
func (st *luaState) prepare() error {
	route, err := st.loadRoute()
	if err == nil && st.pure {
		st.route = route
	}
	return err
}

// loadRoute runs the chunk in fresh globals and returns its route function.
// For a chunk that is not pure, running it before every call is what keeps
// calls apart: globals, top-level locals and top-level tables are new each
// time, and the libraries are read-only.
func (st *luaState) loadRoute() (*lua.LFunction, error) {
	L := st.L
	env := L.CreateTable(0, 4)
	env.Metatable = st.envMT
	fn := L.NewFunctionFromProto(st.proto)
	fn.Env = env
	L.Push(fn)
	if err := L.PCall(0, 0, nil); err != nil {
		return nil, st.plainError(err)
	}
	route, ok := env.RawGetString("route").(*lua.LFunction)
	if !ok {
		return nil, errNoRoute
	}
	return route, nil
}

// call runs route for one selection and reads what it returned.
func (st *luaState) call(in *callInput) (rawResult, error) {
	st.in, st.seeded = in, false
	st.cands.update(st, in)
	route := st.route
	if route == nil {
		var err error
		if route, err = st.loadRoute(); err != nil {
			return rawResult{}, err
		}
		if st.pure {
			st.route = route
		}
	}
	L := st.L
	L.Push(route)
	L.Push(st.reqUD)
	L.Push(st.cands.list)
	L.Push(st.exclUD)
	if err := L.PCall(3, 1, nil); err != nil {
		return rawResult{}, st.plainError(err)
	}
	ret := L.Get(-1)
	L.Pop(1)
	switch v := ret.(type) {
	case *lua.LNilType:
		return rawResult{none: true}, nil
	case lua.LString:
		return rawResult{id: string(v)}, nil
	case *lua.LTable:
		if slot, ok := st.cands.slotOf[v]; ok && slot < len(in.sel.Candidates) {
			id := in.sel.Candidates[slot].ID
			return rawResult{id: id, candidate: true}, nil
		}
	}
	return rawResult{other: describeLua(ret)}, nil
}

func describeLua(v lua.LValue) string {
	switch v.Type() {
	case lua.LTNumber, lua.LTBool:
		return fmt.Sprintf("%s %s", v.Type(), v.String())
	}
	return "a " + v.Type().String()
}

// seed re-seeds the per-call random source from conversation id and attempt.
func seed(pcg *rand.PCG, conversationID string, attempt int) {
	pcg.Seed(randSeed(conversationID, attempt))
}

// --- lists of candidates, request, excluded -------------------------------

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
			return st.in.allViews(), nil
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
			if !ok || slot >= len(st.in.sel.Candidates) {
				L.ArgError(n, fmt.Sprintf("element %d is not a candidate", i))
			}
			outViews = append(outViews, st.in.view(slot))
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
	if !ok || slot >= len(st.in.sel.Candidates) {
		L.ArgError(1, "candidate expected")
	}
	L.Push(lua.LBool(st.in.sel.Candidates[slot].State.HasAffinity(L.CheckString(2))))
	return 1
}

func (st *luaState) reqIndex(L *lua.LState) int {
	sel := st.in.sel
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
	ex := st.in.sel.Excluded
	i, ok := L.Get(2).(lua.LNumber)
	if !ok || int(i) < 1 || int(i) > len(ex) || float64(i) != math.Trunc(float64(i)) {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(lua.LString(ex[int(i)-1]))
	return 1
}

func (st *luaState) exclLen(L *lua.LState) int {
	L.Push(lua.LNumber(len(st.in.sel.Excluded)))
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

// --- helpers ---------------------------------------------------------------

func (st *luaState) leastLoaded(L *lua.LState) int {
	if L.Get(1) == st.cands.list { // read the selection's workers in place
		ws := st.in.sel.Candidates
		var tag string
		byTag := L.GetTop() >= 2
		if byTag {
			tag = L.CheckString(2)
		}
		i := leastLoadedWorkers(ws, tag, byTag)
		if i < 0 {
			L.Push(lua.LNil)
		} else {
			L.Push(lua.LString(ws[i].ID))
		}
		return 1
	}
	views, _ := st.list(L, 1)
	if L.GetTop() >= 2 { // least_loaded(list, tag)
		return st.pushChoice(L, views, LeastLoadedWithTagIndex(views, L.CheckString(2)))
	}
	return st.pushChoice(L, views, LeastLoadedIndex(views))
}

func (st *luaState) withTag(L *lua.LState) int {
	views, slots := st.list(L, 1)
	tag := L.CheckString(2)
	n := 0
	for i := range views {
		if views[i].HasAffinity(tag) {
			n++
		}
	}
	out := &luaList{views: make([]engine.ConsumerStateView, 0, n), slots: make([]int, 0, n)}
	for i := range views {
		if views[i].HasAffinity(tag) {
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
	return st.pushChoice(L, views, RendezvousIndex(views, L.CheckString(2)))
}

func (st *luaState) p2c(L *lua.LState) int {
	views, _ := st.list(L, 1)
	return st.pushChoice(L, views, P2CIndex(views, st.rand()))
}

func (st *luaState) random(L *lua.LState) int {
	L.Push(lua.LNumber(st.rand().Float64()))
	return 1
}

// rand returns the decision's random source, seeding it on first use.
func (st *luaState) rand() *rand.Rand {
	if !st.seeded {
		seed(st.pcg, st.in.sel.ConversationID, st.in.sel.Attempt)
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

// jsonDecode turns a JSON document into Lua values (objects become tables
// with string keys, in document order; arrays tables from 1; null nil).
// Text that is not one JSON value raises an error, which pcall catches.
func (st *luaState) jsonDecode(L *lua.LState) int {
	s := L.CheckString(1)
	if len(s) > st.limits.maxString() {
		L.RaiseError("json_decode: input of %d bytes exceeds the %d-byte limit", len(s), st.limits.maxString())
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	v, err := decodeLua(L, dec, 0)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("data after the JSON value")
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = errors.New("unexpected end of JSON input")
	}
	if err != nil {
		L.RaiseError("json_decode: %v", err)
	}
	L.Push(v)
	return 1
}

// maxJSONDepth is how deeply json_decode nests arrays and objects.
const maxJSONDepth = 200

// decodeLua reads one JSON value from dec as a Lua value. Keys are set in
// the order the document gives them, so that pairs walks a decoded object
// the same way in every interpreter (a Go map would not).
func decodeLua(L *lua.LState, dec *json.Decoder, depth int) (lua.LValue, error) {
	if depth >= maxJSONDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		tbl := L.CreateTable(0, 0)
		if t == '[' {
			for i := 1; dec.More(); i++ {
				v, err := decodeLua(L, dec, depth+1)
				if err != nil {
					return nil, err
				}
				tbl.RawSetInt(i, v)
			}
		} else {
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := decodeLua(L, dec, depth+1)
				if err != nil {
					return nil, err
				}
				tbl.RawSetString(k.(string), v)
			}
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		return tbl, nil
	case bool:
		return lua.LBool(t), nil
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return nil, err
		}
		return lua.LNumber(f), nil
	case string:
		return lua.LString(t), nil
	}
	return lua.LNil, nil
}

// --- capped builtins ---------------------------------------------------------

func (st *luaState) tooLong(L *lua.LState, what string, n int) {
	L.RaiseError("%s: result of %d bytes exceeds the %d-byte string limit", what, n, st.limits.maxString())
}

func (st *luaState) strRep(L *lua.LState) int {
	s := L.CheckString(1)
	n := L.CheckInt(2)
	if n <= 0 || s == "" {
		L.Push(lua.LString(""))
		return 1
	}
	if n > st.limits.maxString()/len(s) {
		st.tooLong(L, "string.rep", len(s)*min(n, math.MaxInt32))
	}
	L.Push(lua.LString(strings.Repeat(s, n)))
	return 1
}

// concatName is the global the rewritten chunk calls for `..`.
const concatName = "\x00concat"

// concat implements `a .. b .. c`: strings and numbers are joined within
// the size limit; other operands go through their __concat metamethod.
func (st *luaState) concat(L *lua.LState) int {
	n := L.GetTop()
	total := 0
	plain := true
	for i := 1; i <= n; i++ {
		v := L.Get(i)
		if !lua.LVCanConvToString(v) {
			plain = false
			break
		}
		total += len(lua.LVAsString(v))
	}
	if plain {
		if total > st.limits.maxString() {
			st.tooLong(L, "concatenation", total)
		}
		var b strings.Builder
		b.Grow(total)
		for i := 1; i <= n; i++ {
			b.WriteString(lua.LVAsString(L.Get(i)))
		}
		L.Push(lua.LString(b.String()))
		return 1
	}
	// Right to left, as Lua does, with metamethods where needed.
	acc := L.Get(n)
	for i := n - 1; i >= 1; i-- {
		lhs := L.Get(i)
		if lua.LVCanConvToString(lhs) && lua.LVCanConvToString(acc) {
			s := lua.LVAsString(lhs) + lua.LVAsString(acc)
			if len(s) > st.limits.maxString() {
				st.tooLong(L, "concatenation", len(s))
			}
			acc = lua.LString(s)
			continue
		}
		op := L.GetMetaField(lhs, "__concat")
		if op == lua.LNil {
			op = L.GetMetaField(acc, "__concat")
		}
		if op == lua.LNil {
			bad := lhs
			if lua.LVCanConvToString(lhs) {
				bad = acc
			}
			L.RaiseError("attempt to concatenate a %s value", bad.Type())
		}
		L.Push(op)
		L.Push(lhs)
		L.Push(acc)
		L.Call(2, 1)
		acc = L.Get(-1)
		L.Pop(1)
	}
	L.Push(acc)
	return 1
}

func (st *luaState) tableConcat(L *lua.LState) int {
	t := L.CheckTable(1)
	sep := L.OptString(2, "")
	i := L.OptInt(3, 1)
	j := L.OptInt(4, L.ObjLen(t)) // through __len: host lists are proxies
	var b strings.Builder
	for k := i; k <= j; k++ {
		v := L.GetTable(t, lua.LNumber(k))
		if !lua.LVCanConvToString(v) {
			L.RaiseError("table.concat: invalid value (a %s) at index %d", v.Type(), k)
		}
		s := lua.LVAsString(v)
		if b.Len()+len(s)+len(sep) > st.limits.maxString() {
			st.tooLong(L, "table.concat", b.Len()+len(s)+len(sep))
		}
		b.WriteString(s)
		if k < j {
			b.WriteString(sep)
		}
		if (k-i)%1024 == 1023 && L.Context().Err() != nil {
			L.RaiseError("%v", L.Context().Err())
		}
	}
	L.Push(lua.LString(b.String()))
	return 1
}

func (st *luaState) unpack(L *lua.LState) int {
	t := L.CheckTable(1)
	i := L.OptInt(2, 1)
	j := L.OptInt(3, L.ObjLen(t))
	if j-i >= 4096 {
		L.RaiseError("unpack: too many results (%d; the limit is 4096)", j-i+1)
	}
	for k := i; k <= j; k++ {
		L.Push(L.GetTable(t, lua.LNumber(k)))
	}
	return max(j-i+1, 0)
}

// strFormat checks every directive's width and precision (at most two
// digits, as in C Lua) before formatting, and the result's size after.
func (st *luaState) strFormat(orig *lua.LFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		f := L.CheckString(1)
		arg := 1 // the argument of the directive being read
		for i := 0; i < len(f); i++ {
			if f[i] != '%' {
				continue
			}
			i++
			if i < len(f) && f[i] == '%' {
				continue
			}
			arg++
			for i < len(f) && strings.IndexByte("-+ #0", f[i]) >= 0 {
				i++
			}
			digits := 0
			for i < len(f) && f[i] >= '0' && f[i] <= '9' {
				i++
				digits++
			}
			if i < len(f) && f[i] == '.' {
				i++
				prec := 0
				for i < len(f) && f[i] >= '0' && f[i] <= '9' {
					i++
					prec++
				}
				digits = max(digits, prec)
			}
			if digits > 2 {
				L.RaiseError("string.format: invalid format (width or precision too long)")
			}
			// %s and %q of a table or function write what tostring does,
			// not the interpreter's address.
			if i < len(f) && (f[i] == 's' || f[i] == 'q') && arg <= L.GetTop() {
				if v := L.Get(arg); isReference(v) && L.GetMetaField(v, "__tostring") == lua.LNil {
					L.Replace(arg, lua.LString(v.Type().String()))
				}
			}
		}
		// Bound the result before formatting: 400 %s of 1 MiB each would
		// build 400 MiB first and fail the size check after.
		total := len(f)
		for i := 2; i <= L.GetTop(); i++ {
			if s, ok := L.Get(i).(lua.LString); ok {
				total += len(s)
			} else {
				total += 100 // a number or other value, padded to at most 99
			}
		}
		if total > st.limits.maxString() {
			st.tooLong(L, "string.format", total)
		}
		return st.callCapped(L, orig, "string.format")
	}
}

// isReference reports whether v is a value gopher-lua renders with its
// address.
func isReference(v lua.LValue) bool {
	switch v.Type() {
	case lua.LTTable, lua.LTFunction, lua.LTUserData, lua.LTThread, lua.LTChannel:
		return true
	}
	return false
}

// pcall is the base library's pcall, whose error message, when it is a
// string, names tables and functions by their type rather than address.
func (st *luaState) pcall(orig *lua.LFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		n := st.callCapped(L, orig, "")
		if n >= 2 && L.Get(-n) == lua.LFalse {
			if s, ok := L.Get(-n + 1).(lua.LString); ok {
				L.Replace(-n+1, lua.LString(withoutAddresses(string(s))))
			}
		}
		return n
	}
}

// xpcall is the base library's xpcall, whose handler gets the error
// message, when it is a string, without addresses.
func (st *luaState) xpcall(orig *lua.LFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		if h, ok := L.Get(2).(*lua.LFunction); ok {
			L.Replace(2, L.NewFunction(func(L *lua.LState) int {
				msg := L.Get(1)
				if s, ok := msg.(lua.LString); ok {
					msg = lua.LString(withoutAddresses(string(s)))
				}
				L.Push(h)
				L.Push(msg)
				L.Call(1, 1)
				return 1
			}))
		}
		return st.callCapped(L, orig, "")
	}
}

// callCapped calls orig with this call's arguments and checks string results.
func (st *luaState) callCapped(L *lua.LState, orig *lua.LFunction, what string) int {
	n := L.GetTop()
	L.Push(orig)
	for i := 1; i <= n; i++ {
		L.Push(L.Get(i))
	}
	L.Call(n, lua.MultRet)
	nret := L.GetTop() - n
	if what != "" {
		for i := n + 1; i <= L.GetTop(); i++ {
			if s, ok := L.Get(i).(lua.LString); ok && len(s) > st.limits.maxString() {
				st.tooLong(L, what, len(s))
			}
		}
	}
	return nret
}
