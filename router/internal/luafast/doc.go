// Package luafast compiles the common subset of Lua route functions to Go
// closures over the typed candidates, so that a policy written as a plain
// Lua loop decides without the interpreter: no candidate tables to fill, no
// bytecode to interpret, no context check per instruction.
//
// [Compile] takes a parsed chunk (gopher-lua's AST, after the name check)
// and either returns a [Route] or says, in an [*Unsupported], why the chunk
// is outside the subset; the Lua runtime then runs it in gopher-lua as
// before. A compiled Route runs one call with [Route.Run]; whatever it does
// not model at run time (a type error, arithmetic on a string, a result that
// is neither an id, a candidate nor nil) makes it return [ErrFallback], and
// the runtime re-runs the call in gopher-lua, whose answer is authoritative.
// That re-run is sound because a route in the subset is pure: it writes no
// global, no upvalue and no table, and its random draws come from a source
// seeded per (conversation, attempt), so a second run sees exactly what the
// first saw.
//
// The subset: a chunk of top-level `local NAME = literal` and one
// `function route(request, candidates, excluded)` (any parameter names);
// inside it, locals and assignment to them, numeric for, `for i, c in
// ipairs(list)`, while, repeat, if, break and return; literals, arithmetic
// (+ - * / % ^, unary -) with Lua's float64 semantics, comparisons, and, or,
// not, #; indexing the candidates, a candidate's fields (id, in_flight,
// max_in_flight, buffer_depth, available, the observed latency_ewma,
// latency_peak_ewma, error_rate and exits, tags, tags[i], tags.NAME), the
// request's fields and the excluded ids; c:has_tag(tag); type(v);
// math.max, math.min, math.floor, math.abs and math.random; and the
// helpers dispatch.least_loaded, dispatch.with_tag and dispatch.healthy
// (of the candidates; their lists have a length, elements and ipairs, and
// go to the other helpers), dispatch.rendezvous, dispatch.p2c,
// dispatch.p2c_ewma, dispatch.least_latency, dispatch.random and
// dispatch.has_tag, which call the same package pick functions the Lua
// bindings call. No
// table constructors, no function literals, no string concatenation: the
// subset allocates nothing that grows with the script's work. A literal in
// a condition other than `while true` stays with the interpreter, which
// compiles such conditions its own way (see branchCond), and so do an
// assignment to several names whose values read them (gopher-lua assigns
// each value as it goes) and a constant that folds to -0 (gopher-lua keeps
// one zero per function). At run time,
// arithmetic on a string (Lua would convert "3"), an ordering of mixed
// types, indexing nil, a helper given something other than the candidates
// or a with_tag or healthy list of them, a healthy limit that is not a
// number (or is NaN), and a result that is neither nil, a string
// nor a candidate fall back.
//
// Loops check the call's deadline and context every few hundred back
// edges, so a route that never returns is stopped at its timeout with
// [call.ErrTimeout], as in the interpreter.
package luafast
