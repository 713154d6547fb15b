// Package exprfast compiles the common subset of expr routing scripts to Go
// closures over the typed candidates, so that a policy written plainly in
// expr (filter, reduce, a conditional) decides without expr's VM: no
// candidate boxed into an interface per element, no list of them built per
// filter, no bytecode to interpret.
//
// [Compile] takes the checked and optimized program exprrt compiled (the
// vm.Program's Node) and either returns a [Program] or says, in an
// [*Unsupported], why the script is outside the subset; exprrt then runs
// it in the VM as before. A compiled Program runs one call with
// [Program.Run]; whatever it does not model at run time (a type the
// operator refuses, a member of nil, an index out of range, a memory budget
// spent, a result that is neither an id, a candidate nor nil) makes it
// return [ErrFallback], and exprrt re-runs the call in the VM, whose answer
// is authoritative. That re-run is sound because expr programs are pure:
// they write nothing, and their random draws come from a source seeded per
// (conversation, attempt), so a second run sees exactly what the first saw.
//
// The subset: literals and the optimizer's scalar constants; request,
// candidates and excluded; let and sequences; a candidate's fields (id,
// in_flight, max_in_flight, buffer_depth, available, tags and the
// observed latency_ewma, latency_peak_ewma, error_rate and exits; not
// labels) and the request's; indexing a list of candidates, a candidate's tags or the
// excluded ids (negative indices count from the end); the operators
// + - * with expr's int and float semantics (int with int is an int, which
// wraps; anything with a float is a float), / (always a float), %, ** and
// ^, == and != (an int equals a float of the same value; values of
// different types are unequal), < > <= >= on numbers and on strings,
// and/or/not (&&, ||, !), ?:, ??, in (a tag among a candidate's tags, an
// id among the excluded, a string among a literal list of strings),
// contains, startsWith and endsWith; the builtins len, first, last, min and
// max (of numbers given as arguments), abs, and filter, all, any, none,
// one, count, find, findIndex, sum and reduce over a list, with #, #index
// and #acc; optional members (a?.b); and the helpers leastLoaded,
// withTag, rendezvous, p2c, p2cEwma, leastLatency, healthy, random and
// hasTag, which call the same
// package pick functions exprrt's helpers call. Not in it: map, sortBy
// and the other builtins, findLast and findLastIndex (expr's VM runs
// them its own way: see builtin), ranges, string concatenation, maps,
// array literals: a script that uses them runs in the VM. Where the
// checker typed both sides of == int or string, a value of another type
// falls back, as expr's typed opcodes fail on it.
//
// The builtins' loops check the call's deadline and context every few
// dozen elements, and the lists filter builds count against the VM's
// memory budget as in the VM (the only allocation of the subset the VM
// counts), so a call is stopped, or refused, where the VM's would be.
//
// The commonest script, a helper reading the candidates in place or a ??
// of such calls (`leastLoaded(candidates, "gpu") ?? leastLoaded(candidates)`),
// needs no frame: it runs the same pick functions without one (see
// directCall), and ends with the same look at the context and deadline.
package exprfast
