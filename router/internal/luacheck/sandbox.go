package luacheck

import (
	"slices"
	"sort"
	"strings"
	"sync"

	lua "github.com/yuin/gopher-lua"
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

// dispatchHelpers are the functions of the sandbox's dispatch table.
var dispatchHelpers = []string{"has_tag", "json_decode", "least_loaded", "p2c", "random", "rendezvous", "with_tag"}

// removedMembers are the library functions the sandbox takes away.
var removedMembers = map[string]bool{"string.dump": true, "math.randomseed": true}

// libraryMembers lists, per library table the sandbox keeps, the names it
// holds there (what gopher-lua's library has, less what the sandbox drops).
var libraryMembers = sync.OnceValue(func() map[string][]string {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, open := range []lua.LGFunction{lua.OpenBase, lua.OpenString, lua.OpenTable, lua.OpenMath} {
		L.Push(L.NewFunction(open))
		L.Call(0, 0)
	}
	dropped := map[string]bool{"string.dump": true, "math.randomseed": true}
	out := map[string][]string{"dispatch": append(slices.Clone(dispatchHelpers), "concat")} // concat: what .. calls; not listed
	for _, lib := range []string{"string", "table", "math"} {
		var names []string
		if t, ok := L.GetGlobal(lib).(*lua.LTable); ok {
			t.ForEach(func(k, _ lua.LValue) {
				if s, ok := k.(lua.LString); ok && !dropped[lib+"."+string(s)] && !strings.HasPrefix(string(s), "__") {
					names = append(names, string(s))
				}
			})
		}
		sort.Strings(names)
		out[lib] = names
	}
	return out
})

// requestFields and candidateFields are what scripts can read there.
var (
	requestFields   = []string{"activity_type", "attempt", "channel", "conversation_id", "input", "input_content_type", "namespace", "task_queue", "workflow_id"}
	candidateFields = []string{"available", "buffer_depth", "has_tag", "id", "in_flight", "max_in_flight", "tags"}
)

// sandboxRemoved are the standard names the sandbox takes away.
var sandboxRemoved = map[string]string{
	"next": "use pairs", "rawget": "", "rawset": "", "print": "a script has no output; return a worker id",
	"require": "", "module": "", "dofile": "", "loadfile": "", "load": "", "loadstring": "",
	"collectgarbage": "", "getfenv": "", "setfenv": "", "newproxy": "", "io": "", "os": "", "debug": "",
	"package": "", "coroutine": "", "channel": "", "_G": "", "gcinfo": "", "_printregs": "",
}
