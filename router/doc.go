// Package router chooses workers for the engine: it compiles routing
// scripts (Lua or expr) once per source ([Compiler], [Program]), runs a
// channel's script as an [engine.Router] under a deadline and a bound on
// concurrent calls ([Script]), checks what a script returned against the
// candidates, and reports compile and run-time errors the same way in both
// languages ([ScriptError]; a call that timed out, was not run or returned
// a decision that names no candidate is a [CallError]). Both keep their
// place and the version that failed as data, for errors.As, and render
// them only when printed. It also holds the routing helpers' reference
// semantics ([LeastLoadedIndex] and friends), routing policies written in
// Go ([Native]), the atomic slot a channel's router is swapped in through
// on reload, and the gate that replays a channel's recent decisions
// against a new script before it is put in service.
//
// Each language runs behind one small interface: its runtime lives under
// router/internal (luart for Lua, with the static checks of luacheck and
// the budgeted pattern matcher of luapattern; exprrt for expr), and both
// share router/internal/call (what a call sees and returns),
// router/internal/pick (the helpers) and router/internal/names (the table of
// what a script can see, in each language, from which both runtimes, the
// Lua name check and docs/scripting.md's reference take their names).
package router
