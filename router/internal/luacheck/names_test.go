package luacheck

import (
	"strings"
	"testing"

	"github.com/yuin/gopher-lua/parse"
)

// TestNames runs the name check on its own, without compiling: the first
// problem by line, its token and its column on the line.
func TestNames(t *testing.T) {
	for _, tc := range []struct{ src, msg, token string }{
		{"function route(r, c)\n  return dispatch.least_loaded(c)\nend", "", ""},
		{"function route(r, cands)\n  return dispatch.least_loaded(cand)\nend", "unknown name cand (did you mean cands?)", "cand"},
		{"function route(r, c)\n  return r.regoin\nend", "the request has no field regoin", "regoin"},
		{"function route(r, c)\n  print(c[1].id)\nend", "print is not available to routing scripts", "print"},
	} {
		chunk, err := parse.Parse(strings.NewReader(tc.src), "t")
		if err != nil {
			t.Fatal(err)
		}
		p, ok := Names(chunk)
		if tc.msg == "" {
			if !ok {
				t.Errorf("%q: %+v, want no problem", tc.src, p)
			}
			continue
		}
		if ok || p.Line != 2 || !strings.HasPrefix(p.Message, tc.msg) || p.Token != tc.token {
			t.Errorf("%q: %+v, want line 2, token %q, a message starting %q", tc.src, p, tc.token, tc.msg)
		}
		line := strings.Split(tc.src, "\n")[1]
		if col := TokenColumn(line, p.Token); col < 1 || !strings.HasPrefix(line[col-1:], tc.token) {
			t.Errorf("%q: column %d does not point at %q", tc.src, col, tc.token)
		}
	}
}
