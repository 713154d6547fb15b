package router_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router"
)

// TestJSONDecodeAsDocumented checks what docs/scripting.md says of
// dispatch.json_decode (Lua) and fromJSON (expr), claim by claim: each
// script returns "w1" when the claim holds; a claim of failure wants a
// routing error saying so.
func TestJSONDecodeAsDocumented(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		lang        router.Lang
		src         string
		wantErr     string // "" when the script should choose w1
	}{
		// "the JSON value as tables / maps"
		{"lua object", `{"region":"eu","n":2.5,"ok":true,"tags":["a","b"],"none":null,"o":{"k":"v"}}`, router.Lua, `function route(r)
  local v = dispatch.json_decode(r.input)
  if v.region == "eu" and v.n == 2.5 and v.ok == true and #v.tags == 2 and v.tags[1] == "a"
    and v.tags[2] == "b" and v.none == nil and v.o.k == "v" then return "w1" end
end`, ""},
		{"expr object", `{"region":"eu","n":2.5,"ok":true,"tags":["a","b"],"none":null,"o":{"k":"v"}}`, router.Expr,
			`let v = fromJSON(request.input); v.region == "eu" && v.n == 2.5 && v.ok == true && len(v.tags) == 2 && v.tags[0] == "a" && v.none == nil && v.o.k == "v" ? "w1" : nil`, ""},
		{"lua scalars", `[1, "x", false, null]`, router.Lua, `function route(r)
  local v = dispatch.json_decode(r.input)
  if v[1] == 1 and v[2] == "x" and v[3] == false and v[4] == nil and dispatch.json_decode("3") == 3
    and dispatch.json_decode('"s"') == "s" and dispatch.json_decode("null") == nil then return "w1" end
end`, ""},
		{"expr scalars", `[1, "x", false, null]`, router.Expr,
			`let v = fromJSON(request.input); v[0] == 1 && v[1] == "x" && v[2] == false && v[3] == nil && fromJSON("3") == 3 && fromJSON("null") == nil ? "w1" : nil`, ""},
		// "keeps an object's keys in document order" (Lua); expr lists a
		// map's keys in key order.
		{"lua key order", `{"z":1,"a":2,"m":3,"b":null,"c":4}`, router.Lua, `function route(r)
  local keys = {}
  for k in pairs(dispatch.json_decode(r.input)) do keys[#keys + 1] = k end
  if table.concat(keys, ",") == "z,a,m,c" then return "w1" end
end`, ""},
		{"expr key order", `{"z":1,"a":2,"m":3,"c":4}`, router.Expr,
			`join(keys(fromJSON(request.input)), ",") == "a,c,m,z" ? "w1" : nil`, ""},
		// A key given twice keeps its last value, in both.
		{"lua repeated key", `{"a":1,"a":2}`, router.Lua, `function route(r) if dispatch.json_decode(r.input).a == 2 then return "w1" end end`, ""},
		{"expr repeated key", `{"a":1,"a":2}`, router.Expr, `fromJSON(request.input).a == 2 ? "w1" : nil`, ""},
		// "Both fail on text that is not JSON, and the call is a routing
		// error"
		{"lua not JSON", `region=eu`, router.Lua, "function route(r)\n  local v = dispatch.json_decode(r.input)\n  return \"w1\"\nend",
			"test.lua:2: json_decode: invalid character 'r' looking for beginning of value"},
		{"expr not JSON", `region=eu`, router.Expr, `fromJSON(request.input) == nil ? nil : "w1"`,
			"test.expr:1:1: invalid character 'r' looking for beginning of value"},
		{"lua data after the value", `{"a":1} {"b":2}`, router.Lua, `function route(r) dispatch.json_decode(r.input) return "w1" end`,
			"json_decode: data after the JSON value"},
		{"expr data after the value", `{"a":1} {"b":2}`, router.Expr, `fromJSON(request.input) == nil ? nil : "w1"`,
			"invalid character '{' after top-level value"},
		{"lua empty", ``, router.Lua, `function route(r) dispatch.json_decode(r.input) return "w1" end`,
			"json_decode: unexpected end of JSON input"},
		{"expr empty", ``, router.Expr, `fromJSON(request.input) == nil ? nil : "w1"`, "unexpected end of JSON input"},
		{"lua truncated", `{"a": [1, 2`, router.Lua, `function route(r) dispatch.json_decode(r.input) return "w1" end`,
			"json_decode: unexpected end of JSON input"},
		// "in Lua wrap the call in pcall"
		{"lua pcall", `region=eu`, router.Lua, `function route(r)
  local ok, err = pcall(dispatch.json_decode, r.input)
  if not ok and err:find("json_decode: invalid character", 1, true) then return "w1" end
end`, ""},
		{"lua pcall of valid JSON", `{"a":1}`, router.Lua, `function route(r)
  local ok, v = pcall(dispatch.json_decode, r.input)
  if ok and v.a == 1 then return "w1" end
end`, ""},
		// Limits: the input is a string, and the nesting is bounded.
		{"lua too deep", strings.Repeat("[", 201) + strings.Repeat("]", 201), router.Lua,
			`function route(r) dispatch.json_decode(r.input) return "w1" end`, "json_decode: nested deeper than 200 levels"},
		{"lua deep enough", strings.Repeat("[", 200) + strings.Repeat("]", 200), router.Lua,
			`function route(r) if dispatch.json_decode(r.input) then return "w1" end end`, ""},
		{"lua too long", `"` + strings.Repeat("a", 1<<20) + `"`, router.Lua,
			`function route(r) dispatch.json_decode(r.input) return "w1" end`, "json_decode: input of 1048578 bytes exceeds the 1048576-byte limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := compile(t, tc.lang, tc.src)
			in := selection(t, worker("w1", 0, 1, 0), worker("w2", 0, 1, 0))
			in.Request.Input = engine.Payload{ContentType: "application/json", Data: []byte(tc.input)}
			d, err := s.Select(context.Background(), in)
			if tc.wantErr == "" {
				if err != nil || d.WorkerID != "w1" {
					t.Fatalf("chose %q, %v; want w1", d.WorkerID, err)
				}
				return
			}
			var se *router.ScriptError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("chose %q, %v; want a script error saying %q", d.WorkerID, err, tc.wantErr)
			}
		})
	}
}

// TestJSONDecodeIsBoundedByTheDeadline checks that decoding counts against
// the call's deadline like any other work of the script.
func TestJSONDecodeIsBoundedByTheDeadline(t *testing.T) {
	p, err := router.NewCompiler(router.Limits{}).Compile(router.Lua, "loop.lua",
		[]byte(`function route(r) while true do dispatch.json_decode(r.input) end end`))
	if err != nil {
		t.Fatal(err)
	}
	in := selection(t, worker("w1", 0, 1, 0))
	in.Request.Input.Data = []byte(`{"a":[` + strings.Repeat(`1,`, 1000) + `1]}`)
	_, err = router.NewScript(p, "loop.lua", 20*time.Millisecond).Select(context.Background(), in)
	if !errors.Is(err, router.ErrScriptTimeout) {
		t.Fatalf("err = %v, want a timeout", err)
	}
}
