// Package exprrt is the expr runtime of routing scripts, on expr-lang: it
// compiles a script over the environment scripts see (request, candidates,
// excluded and the helpers, bound to package pick), words expr's messages
// in the script's terms rather than Go's, keeps a pool of runners per
// script, and runs one call, timed against its deadline. Values a script
// renders (keys(), toJSON, messages) come out the same on every run.
package exprrt
