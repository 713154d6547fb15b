package router

import "github.com/aion-dispatch/dispatch/router/internal/luart"

// CompileLuaUnchecked compiles a Lua script without the compile-time check
// of names, for the tests of what the sandbox itself refuses at run time.
func CompileLuaUnchecked(name string, src []byte) (*Program, error) {
	lp, err := luart.CompileUnchecked(src, Limits{}.lua())
	if err != nil {
		return nil, located(Lua, name, err)
	}
	return &Program{lang: Lua, hash: Hash(Lua, src), rt: lp}, nil
}

// Running returns how many calls of s hold a place now: of its bound, or
// the solo place.
func (s *Script) Running() int { return len(s.calls) + len(s.solo) }

// Strike counts an outcome as a call does.
func (s *Script) Strike(timedOut bool) { s.strike(timedOut) }

// Solo reports whether s runs one call at a time for timing out.
func (s *Script) Solo() bool { return s.strikes.Load() >= strikeSolo }

// TakeSolo holds the place a timing-out script runs its one call in, as a
// running call does, until the returned function is called.
func (s *Script) TakeSolo() func() {
	s.solo <- struct{}{}
	return func() { <-s.solo }
}
