package luacheck

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	lua "github.com/yuin/gopher-lua"

	"github.com/aion-dispatch/dispatch/router/internal/names"
)

// What a routing script can name in the sandbox, as the checks know it.

// baseGlobals are the base functions a script keeps. Everything else in the
// base library loads code, reaches the process or bypasses the sandbox, and
// is removed; rawget and next would also let a script see which candidates
// the host has shown so far in a call, which depends on the state's history.
var baseGlobals = map[string]bool{
	"assert": true, "error": true, "ipairs": true, "pairs": true,
	"pcall": true, "rawequal": true, "select": true,
	"setmetatable": true, "getmetatable": true, "tonumber": true,
	"tostring": true, "type": true, "unpack": true, "xpcall": true,
	"_VERSION": true, "string": true, "table": true, "math": true,
}

// SandboxGlobal reports whether the sandbox keeps the global name of the
// base library (a function, or the string, table and math libraries); the
// runtime removes every other.
func SandboxGlobal(name string) bool { return baseGlobals[name] }

// removedMembers are the library functions the sandbox takes away; the
// runtime removes them ([RemovedMembers]) and the check refuses them.
var removedMembers = map[string]bool{"string.dump": true, "math.randomseed": true}

// RemovedMembers returns the library functions the sandbox takes away, as
// "library.name".
func RemovedMembers() []string { return slices.Sorted(maps.Keys(removedMembers)) }

// libraryMembers lists, per library table the sandbox keeps, the names it
// holds there: the dispatch table's are the table of names' Lua helpers
// (hidden ones too), the others what gopher-lua's library has, less what
// the sandbox removes.
var libraryMembers = sync.OnceValue(func() map[string][]string {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, open := range []lua.LGFunction{lua.OpenBase, lua.OpenString, lua.OpenTable, lua.OpenMath} {
		L.Push(L.NewFunction(open))
		L.Call(0, 0)
	}
	out := map[string][]string{"dispatch": names.Lua(names.Helper, true)}
	for _, lib := range []string{"string", "table", "math"} {
		var members []string
		if t, ok := L.GetGlobal(lib).(*lua.LTable); ok {
			t.ForEach(func(k, _ lua.LValue) {
				if s, ok := k.(lua.LString); ok && !removedMembers[lib+"."+string(s)] && !strings.HasPrefix(string(s), "__") {
					members = append(members, string(s))
				}
			})
		}
		sort.Strings(members)
		out[lib] = members
	}
	return out
})

// What scripts are told they can read, from the table of names, sorted:
// the dispatch table's helpers, the request's fields, a candidate's fields
// and methods.
var (
	dispatchHelpers = names.Lua(names.Helper, false)
	requestFields   = names.Lua(names.RequestField, false)
	candidateFields = slices.Sorted(slices.Values(append(names.Lua(names.CandidateField, false), names.Lua(names.CandidateMethod, false)...)))
)

// sandboxRemoved are the standard names the sandbox takes away.
var sandboxRemoved = map[string]string{
	"next": "use pairs", "rawget": "", "rawset": "", "print": "a script has no output; return a worker id",
	"require": "", "module": "", "dofile": "", "loadfile": "", "load": "", "loadstring": "",
	"collectgarbage": "", "getfenv": "", "setfenv": "", "newproxy": "", "io": "", "os": "", "debug": "",
	"package": "", "coroutine": "", "channel": "", "_G": "", "gcinfo": "", "_printregs": "",
}
