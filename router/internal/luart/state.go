package luart

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"

	lua "github.com/yuin/gopher-lua"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/call"
	"github.com/aion-dispatch/dispatch/router/internal/luacheck"
	"github.com/aion-dispatch/dispatch/router/internal/names"
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
	callIn call.Input  // the current call's input
	in     *call.Input // &callIn during a call

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

func (p *Program) newState() (st *luaState, err error) {
	setArrayIndex.Do(func() { lua.MaxArrayIndex = maxArrayIndex })
	L := lua.NewState(lua.Options{
		SkipOpenLibs:    true,
		CallStackSize:   p.limits.CallStack,
		RegistrySize:    1024,
		RegistryMaxSize: p.limits.RegistryMax,
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

	for _, m := range luacheck.RemovedMembers() {
		lib, name, _ := strings.Cut(m, ".")
		G.RawGetString(lib).(*lua.LTable).RawSetString(name, lua.LNil)
	}
	str := G.RawGetString("string").(*lua.LTable)
	origFormat := str.RawGetString("format").(*lua.LFunction)
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

	st.hasTag = L.NewFunction(st.candHasTag)
	st.refuseWrite = L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("cannot assign to a read-only value")
		return 0
	})
	disp := L.NewTable()
	for _, name := range names.Lua(names.Helper, true) {
		disp.RawSetString(name, st.helper(name))
	}
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

// helper returns the function of the dispatch table's helper name, a row
// of the table of names; it panics on a name it has no function for
// (newState recovers, and TestSandboxHelpersMatchNames names it).
func (st *luaState) helper(name string) lua.LValue {
	var fn lua.LGFunction
	switch name {
	case "least_loaded":
		fn = st.leastLoaded
	case "with_tag":
		fn = st.withTag
	case "rendezvous":
		fn = st.rendezvous
	case "p2c":
		fn = st.p2c
	case "p2c_ewma":
		fn = st.p2cEWMA
	case "least_latency":
		fn = st.leastLatency
	case "healthy":
		fn = st.healthy
	case "random":
		fn = st.random
	case "json_decode":
		fn = st.jsonDecode
	case "concat":
		fn = st.concat
	case "has_tag":
		return st.hasTag // the candidates' method, the same function
	default:
		panic("luart: no function for the helper dispatch." + name)
	}
	return st.L.NewFunction(fn)
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
func (st *luaState) call(in *call.Input) (call.Result, error) {
	st.in, st.seeded = in, false
	st.cands.update(st, in)
	route := st.route
	if route == nil {
		var err error
		if route, err = st.loadRoute(); err != nil {
			return call.Result{}, err
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
		return call.Result{}, st.plainError(err)
	}
	ret := L.Get(-1)
	L.Pop(1)
	switch v := ret.(type) {
	case *lua.LNilType:
		return call.Result{None: true}, nil
	case lua.LString:
		return call.Result{ID: string(v)}, nil
	case *lua.LTable:
		if slot, ok := st.cands.slotOf[v]; ok && slot < len(in.Sel.Candidates) {
			id := in.Sel.Candidates[slot].ID()
			return call.Result{ID: id, Candidate: true}, nil
		}
	}
	return call.Result{Other: describeLua(ret)}, nil
}

func describeLua(v lua.LValue) string {
	switch v.Type() {
	case lua.LTNumber, lua.LTBool:
		return fmt.Sprintf("%s %s", v.Type(), v.String())
	}
	return "a " + v.Type().String()
}
