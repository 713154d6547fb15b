package luacheck

import (
	"strings"
	"testing"

	"github.com/yuin/gopher-lua/parse"
)

func TestPureChunk(t *testing.T) {
	for _, tc := range []struct {
		name         string
		src          string
		pure, direct bool
	}{
		{"helpers only", `function route(r, c) return dispatch.least_loaded(c) end`, true, true},
		{"constants and local functions", `local limit = 3
local function pick(c) return c[1] end
function route(r, c) local x = pick(c) return x and x.id end`, true, true},
		{"own table", `function route(r, c) local t = {} t.n = 1 t[2] = 3 return c[1].id end`, true, true},
		{"own table in a loop", `function route(r, c) for i = 1, #c do local t = {} t.x = c[i].id end end`, true, true},
		{"global write", `function route(r, c) seen = 1 end`, false, false},
		{"upvalue write", `local n = 0 function route(r, c) n = n + 1 end`, false, false},
		{"top-level table", `local t = {} function route(r, c) return t end`, false, false},
		{"top-level call", `local x = tostring(1) function route() end`, false, false},
		{"write to a candidate", `function route(r, c) c[1].in_flight = 0 end`, true, false},
		{"write to the list", `function route(r, c) c[1] = nil end`, true, false},
		{"write to a loop variable", `function route(r, c) for _, w in ipairs(c) do w.x = 1 end end`, true, false},
		{"table rebound to a candidate", `function route(r, c) local t = {} t = c[1] t.x = 1 end`, true, false},
		{"rebound later in a loop", `function route(r, c) local t = {} for i = 1, #c do t.x = 1 t = c[i] end end`, true, false},
		{"fresh only in a branch", `function route(r, c) local t = c[1] if r then t = {} end t.x = 1 end`, true, false},
		{"nested field", `function route(r, c) local t = {} t.a.b = 1 end`, true, false},
		{"method definition on a candidate", `function route(r, c) local w = c[1] function w.f() end end`, true, false},
		{"closure writes an upvalue table", `function route(r, c) local t = {} local f = function() t.x = 1 end f() end`, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chunk, err := parse.Parse(strings.NewReader(tc.src), "t")
			if err != nil {
				t.Fatal(err)
			}
			pure, direct := Purity(chunk)
			if pure != tc.pure || direct != tc.direct {
				t.Errorf("pure, direct = %v, %v; want %v, %v", pure, direct, tc.pure, tc.direct)
			}
		})
	}
}
