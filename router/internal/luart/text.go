package luart

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/aion-dispatch/dispatch/router/internal/call"
)

// luaAddress matches gopher-lua's rendering of a reference value ("table:
// 0x13eb273270e0"), which differs from one interpreter to the next.
var luaAddress = regexp.MustCompile(`\b(table|function|userdata|thread|channel): 0x[0-9a-f]+`)

// withoutAddresses replaces gopher-lua's renderings of reference values in
// s by their type, as the sandbox's tostring does.
func withoutAddresses(s string) string {
	if !strings.Contains(s, ": 0x") {
		return s
	}
	return luaAddress.ReplaceAllString(s, "$1")
}

// plainError makes the error of a call or of the chunk say what the script
// raised without an address: a string keeps its text, a table or other
// reference value is written out as the script would write it.
func (st *luaState) plainError(err error) error {
	var ae *lua.ApiError
	if !errors.As(err, &ae) || ae.Object == nil {
		return err
	}
	switch v := ae.Object.(type) {
	case lua.LString:
		if s := withoutAddresses(string(v)); s != string(v) {
			ae.Object = lua.LString(s)
		}
	case lua.LNumber, lua.LBool, *lua.LNilType:
	default:
		msg := "error object is not a string: " + st.luaText(v)
		// Lua puts no place in front of a value that is not a string; the
		// traceback has the line that raised it.
		if m := luaTraceLine.FindStringSubmatch(ae.StackTrace); m != nil {
			msg = m[1] + " " + msg
		}
		ae.Object = lua.LString(msg)
	}
	return err
}

// luaTraceLine finds the innermost place in the script in a traceback.
var luaTraceLine = regexp.MustCompile(`(?m)^\t(` + luaChunkName + `:\d+:)`)

// luaText renders v as a Lua script would write it: literals for strings,
// numbers, booleans and tables (at most call.TextEntries entries, call.TextDepth
// levels and about call.TextBytes bytes, the rest elided with "…"), and names
// for the host's values (request, candidates, candidate "w1", excluded,
// dispatch) and for functions. Keys come in the table's own order, which
// the same script gives the same way in every interpreter.
func (st *luaState) luaText(v lua.LValue) string {
	var b strings.Builder
	st.writeLua(&b, v, 0)
	return b.String()
}

func (st *luaState) writeLua(b *strings.Builder, v lua.LValue, depth int) {
	switch v := v.(type) {
	case *lua.LNilType:
		b.WriteString("nil")
	case lua.LBool, lua.LNumber:
		b.WriteString(v.String())
	case lua.LString:
		b.WriteString(strconv.Quote(string(v)))
	case *lua.LFunction:
		b.WriteString("function")
	case *lua.LUserData:
		switch {
		case v == st.reqUD:
			b.WriteString("request")
		case v == st.exclUD:
			b.WriteString("excluded")
		default:
			if l, ok := v.Value.(*luaList); ok {
				st.writeList(b, l.slots)
			} else {
				b.WriteString("userdata")
			}
		}
	case *lua.LTable:
		st.writeTable(b, v, depth)
	default:
		b.WriteString(v.Type().String())
	}
}

// writeList writes a list of candidate slots as a table of candidates.
func (st *luaState) writeList(b *strings.Builder, slots []int) {
	b.WriteByte('{')
	for i, slot := range slots {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == call.TextEntries || b.Len() > call.TextBytes {
			b.WriteString("… (" + strconv.Itoa(len(slots)-i) + " more)")
			break
		}
		st.writeCandidate(b, slot)
	}
	b.WriteByte('}')
}

func (st *luaState) writeCandidate(b *strings.Builder, slot int) {
	if st.in == nil || slot >= len(st.in.Sel.Candidates) {
		b.WriteString("candidate")
		return
	}
	b.WriteString("candidate " + strconv.Quote(st.in.Sel.Candidates[slot].ID()))
}

func (st *luaState) writeTable(b *strings.Builder, t *lua.LTable, depth int) {
	if t == st.cands.list {
		b.WriteString("candidates")
		return
	}
	if slot, ok := st.cands.slotOf[t]; ok {
		st.writeCandidate(b, slot)
		return
	}
	if name, ok := st.names[t]; ok {
		b.WriteString(name)
		return
	}
	if data := readOnlyData(t); data != nil { // a host proxy: show what it shows
		t = data
	}
	if depth >= call.TextDepth {
		b.WriteString("{…}")
		return
	}
	b.WriteByte('{')
	n, listed := 0, true // entries written; whether all so far were t[1], t[2], …
	for k, v := t.Next(lua.LNil); k != lua.LNil; k, v = t.Next(k) {
		if n > 0 {
			b.WriteString(", ")
		}
		if n == call.TextEntries || b.Len() > call.TextBytes {
			b.WriteString("… (" + strconv.Itoa(tableLen(t)-n) + " more)")
			break
		}
		n++
		if listed && k == lua.LNumber(n) {
			// written without its key, as in {"a", "b"}
		} else {
			listed = false
			st.writeKey(b, k, depth)
			b.WriteString(" = ")
		}
		st.writeLua(b, v, depth+1)
	}
	b.WriteByte('}')
}

func (st *luaState) writeKey(b *strings.Builder, k lua.LValue, depth int) {
	if s, ok := k.(lua.LString); ok && isLuaName(string(s)) {
		b.WriteString(string(s))
		return
	}
	b.WriteByte('[')
	st.writeLua(b, k, depth+1)
	b.WriteByte(']')
}

// tableLen counts t's entries.
func tableLen(t *lua.LTable) int {
	n := 0
	for k, _ := t.Next(lua.LNil); k != lua.LNil; k, _ = t.Next(k) {
		n++
	}
	return n
}

var luaKeywords = map[string]bool{
	"and": true, "break": true, "do": true, "else": true, "elseif": true, "end": true,
	"false": true, "for": true, "function": true, "if": true, "in": true, "local": true,
	"nil": true, "not": true, "or": true, "repeat": true, "return": true, "then": true,
	"true": true, "until": true, "while": true,
}

// isLuaName reports whether s can be written as a bare key (t.s).
func isLuaName(s string) bool {
	if s == "" || luaKeywords[s] {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
