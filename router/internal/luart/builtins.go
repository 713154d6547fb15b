package luart

import (
	"math"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The built-ins the sandbox caps: functions of the base, string and table
// libraries that could build strings past the size limit, run past the
// deadline inside one call into Go, or show an interpreter's addresses.

func (st *luaState) tooLong(L *lua.LState, what string, n int) {
	L.RaiseError("%s: result of %d bytes exceeds the %d-byte string limit", what, n, st.limits.MaxString)
}

func (st *luaState) strRep(L *lua.LState) int {
	s := L.CheckString(1)
	n := L.CheckInt(2)
	if n <= 0 || s == "" {
		L.Push(lua.LString(""))
		return 1
	}
	if n > st.limits.MaxString/len(s) {
		st.tooLong(L, "string.rep", len(s)*min(n, math.MaxInt32))
	}
	L.Push(lua.LString(strings.Repeat(s, n)))
	return 1
}

// concat implements `a .. b .. c`: strings and numbers are joined within
// the size limit; other operands go through their __concat metamethod.
func (st *luaState) concat(L *lua.LState) int {
	n := L.GetTop()
	total := 0
	plain := true
	for i := 1; i <= n; i++ {
		v := L.Get(i)
		if !lua.LVCanConvToString(v) {
			plain = false
			break
		}
		total += len(lua.LVAsString(v))
	}
	if plain {
		if total > st.limits.MaxString {
			st.tooLong(L, "concatenation", total)
		}
		var b strings.Builder
		b.Grow(total)
		for i := 1; i <= n; i++ {
			b.WriteString(lua.LVAsString(L.Get(i)))
		}
		L.Push(lua.LString(b.String()))
		return 1
	}
	// Right to left, as Lua does, with metamethods where needed.
	acc := L.Get(n)
	for i := n - 1; i >= 1; i-- {
		lhs := L.Get(i)
		if lua.LVCanConvToString(lhs) && lua.LVCanConvToString(acc) {
			s := lua.LVAsString(lhs) + lua.LVAsString(acc)
			if len(s) > st.limits.MaxString {
				st.tooLong(L, "concatenation", len(s))
			}
			acc = lua.LString(s)
			continue
		}
		op := L.GetMetaField(lhs, "__concat")
		if op == lua.LNil {
			op = L.GetMetaField(acc, "__concat")
		}
		if op == lua.LNil {
			bad := lhs
			if lua.LVCanConvToString(lhs) {
				bad = acc
			}
			L.RaiseError("attempt to concatenate a %s value", bad.Type())
		}
		L.Push(op)
		L.Push(lhs)
		L.Push(acc)
		L.Call(2, 1)
		acc = L.Get(-1)
		L.Pop(1)
	}
	L.Push(acc)
	return 1
}

func (st *luaState) tableConcat(L *lua.LState) int {
	t := L.CheckTable(1)
	sep := L.OptString(2, "")
	i := L.OptInt(3, 1)
	j := L.OptInt(4, L.ObjLen(t)) // through __len: host lists are proxies
	var b strings.Builder
	for k := i; k <= j; k++ {
		v := L.GetTable(t, lua.LNumber(k))
		if !lua.LVCanConvToString(v) {
			L.RaiseError("table.concat: invalid value (a %s) at index %d", v.Type(), k)
		}
		s := lua.LVAsString(v)
		if b.Len()+len(s)+len(sep) > st.limits.MaxString {
			st.tooLong(L, "table.concat", b.Len()+len(s)+len(sep))
		}
		b.WriteString(s)
		if k < j {
			b.WriteString(sep)
		}
		if (k-i)%1024 == 1023 && L.Context().Err() != nil {
			L.RaiseError("%v", L.Context().Err())
		}
	}
	L.Push(lua.LString(b.String()))
	return 1
}

func (st *luaState) unpack(L *lua.LState) int {
	t := L.CheckTable(1)
	i := L.OptInt(2, 1)
	j := L.OptInt(3, L.ObjLen(t))
	if j-i >= 4096 {
		L.RaiseError("unpack: too many results (%d; the limit is 4096)", j-i+1)
	}
	for k := i; k <= j; k++ {
		L.Push(L.GetTable(t, lua.LNumber(k)))
	}
	return max(j-i+1, 0)
}

// strFormat checks every directive's width and precision (at most two
// digits, as in C Lua) before formatting, and the result's size after.
func (st *luaState) strFormat(orig *lua.LFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		f := L.CheckString(1)
		arg := 1 // the argument of the directive being read
		for i := 0; i < len(f); i++ {
			if f[i] != '%' {
				continue
			}
			i++
			if i < len(f) && f[i] == '%' {
				continue
			}
			arg++
			for i < len(f) && strings.IndexByte("-+ #0", f[i]) >= 0 {
				i++
			}
			digits := 0
			for i < len(f) && f[i] >= '0' && f[i] <= '9' {
				i++
				digits++
			}
			if i < len(f) && f[i] == '.' {
				i++
				prec := 0
				for i < len(f) && f[i] >= '0' && f[i] <= '9' {
					i++
					prec++
				}
				digits = max(digits, prec)
			}
			if digits > 2 {
				L.RaiseError("string.format: invalid format (width or precision too long)")
			}
			// %s and %q of a table or function write what tostring does,
			// not the interpreter's address.
			if i < len(f) && (f[i] == 's' || f[i] == 'q') && arg <= L.GetTop() {
				if v := L.Get(arg); isReference(v) && L.GetMetaField(v, "__tostring") == lua.LNil {
					L.Replace(arg, lua.LString(v.Type().String()))
				}
			}
		}
		// Bound the result before formatting: 400 %s of 1 MiB each would
		// build 400 MiB first and fail the size check after.
		total := len(f)
		for i := 2; i <= L.GetTop(); i++ {
			if s, ok := L.Get(i).(lua.LString); ok {
				total += len(s)
			} else {
				total += 100 // a number or other value, padded to at most 99
			}
		}
		if total > st.limits.MaxString {
			st.tooLong(L, "string.format", total)
		}
		return st.callCapped(L, orig, "string.format")
	}
}

// isReference reports whether v is a value gopher-lua renders with its
// address.
func isReference(v lua.LValue) bool {
	switch v.Type() {
	case lua.LTTable, lua.LTFunction, lua.LTUserData, lua.LTThread, lua.LTChannel:
		return true
	}
	return false
}

// pcall is the base library's pcall, whose error message, when it is a
// string, names tables and functions by their type rather than address.
func (st *luaState) pcall(orig *lua.LFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		n := st.callCapped(L, orig, "")
		if n >= 2 && L.Get(-n) == lua.LFalse {
			if s, ok := L.Get(-n + 1).(lua.LString); ok {
				L.Replace(-n+1, lua.LString(withoutAddresses(string(s))))
			}
		}
		return n
	}
}

// xpcall is the base library's xpcall, whose handler gets the error
// message, when it is a string, without addresses.
func (st *luaState) xpcall(orig *lua.LFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		if h, ok := L.Get(2).(*lua.LFunction); ok {
			L.Replace(2, L.NewFunction(func(L *lua.LState) int {
				msg := L.Get(1)
				if s, ok := msg.(lua.LString); ok {
					msg = lua.LString(withoutAddresses(string(s)))
				}
				L.Push(h)
				L.Push(msg)
				L.Call(1, 1)
				return 1
			}))
		}
		return st.callCapped(L, orig, "")
	}
}

// callCapped calls orig with this call's arguments and checks string results.
func (st *luaState) callCapped(L *lua.LState, orig *lua.LFunction, what string) int {
	n := L.GetTop()
	L.Push(orig)
	for i := 1; i <= n; i++ {
		L.Push(L.Get(i))
	}
	L.Call(n, lua.MultRet)
	nret := L.GetTop() - n
	if what != "" {
		for i := n + 1; i <= L.GetTop(); i++ {
			if s, ok := L.Get(i).(lua.LString); ok && len(s) > st.limits.MaxString {
				st.tooLong(L, what, len(s))
			}
		}
	}
	return nret
}
