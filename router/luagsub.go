package router

import (
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/pm"
)

// strGsub is string.gsub built in one pass. gopher-lua's own copies the
// whole string once per match, which is quadratic; this one appends each
// piece once, stops at the string limit, and checks the deadline as it goes.
func (st *luaState) strGsub(L *lua.LState) int {
	str := L.CheckString(1)
	pat := L.CheckString(2)
	repl := L.Get(3)
	switch repl.Type() {
	case lua.LTString, lua.LTNumber, lua.LTTable, lua.LTFunction:
	default:
		L.ArgError(3, "string/function/table expected, got "+repl.Type().String())
	}
	limit := L.OptInt(4, -1)
	maxLen := st.limits.maxString()
	if len(str) > maxLen {
		L.RaiseError("string.gsub: subject of %d bytes exceeds the %d-byte limit", len(str), maxLen)
	}
	mds, err := pm.Find(pat, []byte(str), 0, limit)
	if err != nil {
		L.RaiseError("%s", err.Error())
	}
	var b strings.Builder
	last := 0
	for n, md := range mds {
		start, end := md.Capture(0), md.Capture(1)
		b.WriteString(str[last:start])
		whole := str[start:end]
		switch r := repl.(type) {
		case *lua.LTable:
			st.writeReplacement(L, &b, whole, L.GetTable(r, gsubKey(md, str)))
		case *lua.LFunction:
			L.Push(r)
			nargs := gsubPushCaptures(L, md, str)
			L.Call(nargs, 1)
			v := L.Get(-1)
			L.Pop(1)
			st.writeReplacement(L, &b, whole, v)
		default:
			gsubExpand(L, &b, lua.LVAsString(repl), md, str)
		}
		if b.Len() > maxLen {
			st.tooLong(L, "string.gsub", b.Len())
		}
		last = end
		if n%256 == 255 && L.Context().Err() != nil {
			L.RaiseError("%v", L.Context().Err())
		}
	}
	b.WriteString(str[last:])
	if b.Len() > maxLen {
		st.tooLong(L, "string.gsub", b.Len())
	}
	L.Push(lua.LString(b.String()))
	L.Push(lua.LNumber(len(mds)))
	return 2
}

// writeReplacement writes v, or the match itself when v is false or nil.
func (st *luaState) writeReplacement(L *lua.LState, b *strings.Builder, whole string, v lua.LValue) {
	switch {
	case lua.LVIsFalse(v):
		b.WriteString(whole)
	case lua.LVCanConvToString(v):
		b.WriteString(lua.LVAsString(v))
	default:
		L.RaiseError("invalid replacement value (a %s)", v.Type())
	}
}

// capture returns capture i (0 is the whole match) as a Lua value.
func gsubCapture(md *pm.MatchData, str string, i int) lua.LValue {
	idx := 2 * i
	if i > 0 && idx >= md.CaptureLength() {
		return nil
	}
	if md.IsPosCapture(idx) {
		return lua.LNumber(md.Capture(idx))
	}
	return lua.LString(str[md.Capture(idx):md.Capture(idx+1)])
}

// gsubKey is the first capture, or the whole match when there is none.
func gsubKey(md *pm.MatchData, str string) lua.LValue {
	if md.CaptureLength() > 2 {
		return gsubCapture(md, str, 1)
	}
	return gsubCapture(md, str, 0)
}

func gsubPushCaptures(L *lua.LState, md *pm.MatchData, str string) int {
	if md.CaptureLength() <= 2 {
		L.Push(gsubCapture(md, str, 0))
		return 1
	}
	n := 0
	for i := 1; 2*i < md.CaptureLength(); i++ {
		L.Push(gsubCapture(md, str, i))
		n++
	}
	return n
}

// gsubExpand writes a replacement string, expanding %0–%9 and %%.
func gsubExpand(L *lua.LState, b *strings.Builder, repl string, md *pm.MatchData, str string) {
	for i := 0; i < len(repl); i++ {
		c := repl[i]
		if c != '%' || i+1 == len(repl) {
			b.WriteByte(c)
			continue
		}
		i++
		d := repl[i]
		if d < '0' || d > '9' {
			b.WriteByte(d)
			continue
		}
		k := int(d - '0')
		if k == 1 && md.CaptureLength() <= 2 {
			k = 0 // %1 with no captures is the whole match
		}
		v := gsubCapture(md, str, k)
		if v == nil {
			L.RaiseError("invalid capture index %%%s", strconv.Itoa(k))
		}
		b.WriteString(lua.LVAsString(v))
	}
}
