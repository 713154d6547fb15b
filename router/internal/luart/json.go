package luart

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// jsonDecode turns a JSON document into Lua values (objects become tables
// with string keys, in document order; arrays tables from 1; null nil).
// Text that is not one JSON value raises an error, which pcall catches.
func (st *luaState) jsonDecode(L *lua.LState) int {
	s := L.CheckString(1)
	if len(s) > st.limits.MaxString {
		L.RaiseError("json_decode: input of %d bytes exceeds the %d-byte limit", len(s), st.limits.MaxString)
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	v, err := decodeLua(L, dec, 0)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("data after the JSON value")
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = errors.New("unexpected end of JSON input")
	}
	if err != nil {
		L.RaiseError("json_decode: %v", err)
	}
	L.Push(v)
	return 1
}

// maxJSONDepth is how deeply json_decode nests arrays and objects.
const maxJSONDepth = 200

// decodeLua reads one JSON value from dec as a Lua value. Keys are set in
// the order the document gives them, so that pairs walks a decoded object
// the same way in every interpreter (a Go map would not).
func decodeLua(L *lua.LState, dec *json.Decoder, depth int) (lua.LValue, error) {
	if depth >= maxJSONDepth {
		return nil, fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		tbl := L.CreateTable(0, 0)
		if t == '[' {
			for i := 1; dec.More(); i++ {
				v, err := decodeLua(L, dec, depth+1)
				if err != nil {
					return nil, err
				}
				tbl.RawSetInt(i, v)
			}
		} else {
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := decodeLua(L, dec, depth+1)
				if err != nil {
					return nil, err
				}
				tbl.RawSetString(k.(string), v)
			}
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		return tbl, nil
	case bool:
		return lua.LBool(t), nil
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return nil, err
		}
		return lua.LNumber(f), nil
	case string:
		return lua.LString(t), nil
	}
	return lua.LNil, nil
}
