// Package luacheck is the static analysis of a Lua routing script, run
// once when it is compiled: the check that every name it reads exists in
// the sandbox ([Names]), with suggestions for the ones that do not, and the
// purity analysis that says whether one run of its chunk may serve every
// call ([Purity]). It reads gopher-lua's syntax tree and runs nothing.
package luacheck
