package luafast

import (
	"slices"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
)

// TestTaggedListsAreFoundOnce: a with_tag list is looked for once per call
// and tag, so that a loop indexing it reads each element at constant cost
// (it was found again on every #l and l[i]: a loop over 5,000 tagged
// candidates then ran past a deadline the interpreter met).
func TestTaggedListsAreFoundOnce(t *testing.T) {
	f := &frame{}
	f.in.Sel.Candidates = []engine.Worker{
		{State: engine.ConsumerStateView{ID: "a", Tags: []string{"gpu"}}},
		{State: engine.ConsumerStateView{ID: "b"}},
		{State: engine.ConsumerStateView{ID: "c", Tags: []string{"eu", "gpu"}}},
	}
	gpu := f.tagged("gpu")
	if !slices.Equal(gpu, []int32{0, 2}) || len(f.tagged("gpu")) != 2 || f.tagged("gpu")[1] != 2 {
		t.Fatalf("with_tag gpu: %v", gpu)
	}
	if again := f.tagged("gpu"); &again[0] != &gpu[0] {
		t.Error("the list was found again")
	}
	if eu := f.tagged("eu"); !slices.Equal(eu, []int32{2}) || len(f.tagLists) != 2 {
		t.Errorf("with_tag eu: %v, lists %d", eu, len(f.tagLists))
	}
	if none := f.tagged("x"); len(none) != 0 {
		t.Errorf("with_tag x: %v", none)
	}
}
