// Package peers benchmarks one routing policy in every embeddable engine
// the project could have chosen, against the project's own Lua and expr
// routers (issue 16).
//
// The policy: among the candidates with a free slot (max_in_flight -
// in_flight > 0), those carrying a tag ("gpu") are preferred; among the
// preferred, the one with the most free slots wins; ties go to the first.
// It is written once per engine:
//
//   - in Go, as a [router.Native] policy ([MostFree]);
//   - in the project's Lua and expr, compiled and called through the public
//     router API exactly as the engine calls Select ([LuaLoop], [ExprLoop]);
//   - with the project's helpers, which express a simpler policy (least
//     loaded, tag first: [LuaHelper], [ExprHelper], checked against
//     [LeastLoadedFirst] rather than [MostFree]);
//   - in gopher-lua used directly, with the candidates handed over as flat
//     arrays of numbers and booleans ([GopherLuaFlat]);
//   - in Starlark (go.starlark.net), goja (JavaScript) and OPA's Rego with a
//     prepared query ([Starlark], [Goja], [Rego]).
//
// Each call of a peer converts the selection's candidates into the engine's
// own values, as the project's routers do, so the figures compare whole
// decisions. This is a module of its own so that the main module gains none
// of these dependencies: run it with `make bench-peers`.
package peers
