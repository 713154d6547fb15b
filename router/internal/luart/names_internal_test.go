package luart

import (
	"slices"
	"sort"
	"testing"

	lua "github.com/yuin/gopher-lua"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/names"
)

// keys returns t's string keys, sorted.
func keys(t *lua.LTable) []string {
	var out []string
	t.ForEach(func(k, _ lua.LValue) {
		if s, ok := k.(lua.LString); ok {
			out = append(out, string(s))
		}
	})
	sort.Strings(out)
	return out
}

// TestSandboxHelpersMatchNames: the dispatch table holds exactly the Lua
// helpers of the table of names, hidden ones included.
func TestSandboxHelpersMatchNames(t *testing.T) {
	p, err := CompileUnchecked([]byte("function route(r, c) return nil end"), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.newState()
	if err != nil {
		t.Fatal(err)
	}
	defer st.L.Close()
	disp := readOnlyData(st.L.G.Global.RawGetString("dispatch").(*lua.LTable))
	if disp == nil {
		t.Fatal("dispatch is not a read-only table")
	}
	if got, want := keys(disp), names.Lua(names.Helper, true); !slices.Equal(got, want) {
		t.Errorf("dispatch has %v, the table of names %v", got, want)
	}
}

// TestSandboxFieldsMatchNames: the request reads exactly the table's
// request fields (any other name is nil), and a candidate holds exactly its
// fields and methods.
func TestSandboxFieldsMatchNames(t *testing.T) {
	p, err := CompileUnchecked([]byte(`function route(r, c) return nil end`), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.newState()
	if err != nil {
		t.Fatal(err)
	}
	defer st.L.Close()
	ch, _ := engine.DispatchChannel("prod", "email")
	st.callIn.Sel = engine.Selection{Channel: ch, WorkflowID: "wf", ConversationID: "c1", Attempt: 1,
		Request:    engine.ActivityRequest{ActivityType: "a", Input: engine.Payload{ContentType: "text/plain", Data: []byte("x")}},
		Candidates: []engine.Worker{{State: engine.ConsumerStateView{ID: "w1", MaxInFlight: 1, Tags: []string{"gpu"}}}}}
	st.in = &st.callIn
	st.cands.update(st, st.in)
	L := st.L
	fields := map[string]bool{"region": false, "has_tag": false, "id": false}
	for _, n := range names.Of(names.RequestField) {
		fields[n.Lua] = true
	}
	for name, want := range fields {
		L.Push(L.NewFunction(st.reqIndex))
		L.Push(st.reqUD)
		L.Push(lua.LString(name))
		L.Call(2, 1)
		v := L.Get(-1)
		L.Pop(1)
		if (v != lua.LNil) != want {
			t.Errorf("request.%s = %v", name, v)
		}
	}
	data := readOnlyData(st.cands.show(st, lua.LNumber(1)).(*lua.LTable))
	if data == nil {
		data = st.cands.slots[0].data
	}
	want := slices.Sorted(slices.Values(append(names.Lua(names.CandidateField, true), names.Lua(names.CandidateMethod, true)...)))
	if got := keys(data); !slices.Equal(got, want) {
		t.Errorf("a candidate has %v, the table of names %v", got, want)
	}
}
