package luart

import (
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/aion-dispatch/dispatch/router/internal/luapattern"
)

// The string library's pattern functions, on the budgeted matcher.

func (st *luaState) checkSubject(L *lua.LState, fn string) string {
	s := L.CheckString(1)
	if len(s) > st.limits.MaxString {
		L.RaiseError("%s: subject of %d bytes exceeds the %d-byte limit", fn, len(s), st.limits.MaxString)
	}
	return s
}

func pushCaptures(L *lua.LState, caps []luapattern.Capture) int {
	for _, c := range caps {
		if c.Position {
			L.Push(lua.LNumber(c.Pos))
		} else {
			L.Push(lua.LString(c.Str))
		}
	}
	return len(caps)
}

func (st *luaState) strFind(L *lua.LState) int {
	s := st.checkSubject(L, "string.find")
	pat := L.CheckString(2)
	init := L.OptInt(3, 1)
	plain := lua.LVAsBool(L.Get(4))
	start, end, caps, err := luapattern.Find(L.Context(), s, pat, init, plain)
	if err != nil {
		L.RaiseError("string.find: %v", err)
	}
	if start == 0 {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(lua.LNumber(start))
	L.Push(lua.LNumber(end))
	return 2 + pushCaptures(L, caps)
}

func (st *luaState) strMatch(L *lua.LState) int {
	s := st.checkSubject(L, "string.match")
	pat := L.CheckString(2)
	start, _, caps, err := luapattern.Match(L.Context(), s, pat, L.OptInt(3, 1))
	if err != nil {
		L.RaiseError("string.match: %v", err)
	}
	if start == 0 {
		L.Push(lua.LNil)
		return 1
	}
	return pushCaptures(L, caps)
}

func (st *luaState) strGmatch(L *lua.LState) int {
	g := luapattern.NewGmatch(st.checkSubject(L, "string.gmatch"), L.CheckString(2))
	L.Push(L.NewFunction(func(L *lua.LState) int {
		caps, err := g.Next(L.Context())
		if err != nil {
			L.RaiseError("string.gmatch: %v", err)
		}
		if caps == nil {
			return 0
		}
		return pushCaptures(L, caps)
	}))
	return 1
}

// strGsub is string.gsub built in one pass: gopher-lua's copies the whole
// string once per match (quadratic). The result is appended once, stops at
// the string limit, and the matcher runs on a step budget under the
// deadline.
func (st *luaState) strGsub(L *lua.LState) int {
	src := st.checkSubject(L, "string.gsub")
	pat := L.CheckString(2)
	repl := L.Get(3)
	switch repl.Type() {
	case lua.LTString, lua.LTNumber, lua.LTTable, lua.LTFunction:
	default:
		L.ArgError(3, "string/function/table expected, got "+repl.Type().String())
	}
	limit := L.OptInt(4, -1)
	maxLen := st.limits.MaxString
	var b strings.Builder
	grow := func(s string) {
		if b.Len()+len(s) > maxLen {
			st.tooLong(L, "string.gsub", b.Len()+len(s))
		}
		b.WriteString(s)
	}
	n, err := luapattern.Gsub(L.Context(), src, pat, limit, grow, func(gm luapattern.GsubMatch) error {
		whole := src[gm.Start:gm.End]
		switch r := repl.(type) {
		case *lua.LTable:
			caps := gm.Captures()
			grow(st.replacement(L, whole, L.GetTable(r, captureLua(caps[0]))))
		case *lua.LFunction:
			caps := gm.Captures()
			L.Push(r)
			pushCaptures(L, caps)
			L.Call(len(caps), 1)
			v := L.Get(-1)
			L.Pop(1)
			grow(st.replacement(L, whole, v))
		default:
			grow(expandReplacement(L, lua.LVAsString(repl), gm, whole))
		}
		return nil
	})
	if err != nil {
		L.RaiseError("string.gsub: %v", err)
	}
	L.Push(lua.LString(b.String()))
	L.Push(lua.LNumber(n))
	return 2
}

func captureLua(c luapattern.Capture) lua.LValue {
	if c.Position {
		return lua.LNumber(c.Pos)
	}
	return lua.LString(c.Str)
}

// replacement is what a table or function replacement gives: v, or the
// match itself when v is false or nil.
func (st *luaState) replacement(L *lua.LState, whole string, v lua.LValue) string {
	switch {
	case lua.LVIsFalse(v):
		return whole
	case lua.LVCanConvToString(v):
		return lua.LVAsString(v)
	}
	L.RaiseError("string.gsub: invalid replacement value (a %s)", v.Type())
	return ""
}

// expandReplacement expands %0–%9 and %% in a replacement string.
func expandReplacement(L *lua.LState, repl string, gm luapattern.GsubMatch, whole string) string {
	if !strings.Contains(repl, "%") {
		return repl
	}
	var b strings.Builder
	for i := 0; i < len(repl); i++ {
		c := repl[i]
		if c != '%' || i+1 == len(repl) {
			b.WriteByte(c)
			continue
		}
		i++
		d := repl[i]
		switch {
		case d == '0':
			b.WriteString(whole)
		case d >= '1' && d <= '9':
			caps := gm.Captures()
			k := int(d - '1')
			if k >= len(caps) {
				L.RaiseError("string.gsub: invalid capture index %%%c", d)
			}
			b.WriteString(lua.LVAsString(captureLua(caps[k])))
		default:
			b.WriteByte(d)
		}
	}
	return b.String()
}
