// Package luart is the Lua runtime of routing scripts, on gopher-lua: it
// compiles a script (with the static checks of package luacheck), keeps a
// pool of sandboxed interpreters per script, and runs one call under a
// deadline.
//
// The sandbox keeps the base functions that neither load code nor reach
// the process, and the string, table and math libraries, read-only; it
// binds the host's values (request, candidates, excluded) as read-only
// views, the dispatch helpers (package pick) and json_decode, and caps the
// built-ins that could build strings without bound or run past the
// deadline inside one call into Go (pattern matching runs on package
// luapattern's budgeted matcher). Decisions do not depend on an
// interpreter's history or addresses: calls are kept apart, the random
// source is seeded per decision, and messages name values by type.
package luart
