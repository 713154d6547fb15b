package peers

import (
	"fmt"

	"github.com/aion-dispatch/dispatch/engine"
)

// Tag is the tag the benchmarked policy prefers.
const Tag = "gpu"

// Candidates returns n workers, the same for every call with the same n:
// 1 to 8 slots each, some full, about one in four tagged "gpu" and the
// others "eu", with many ties in free slots so that "ties go to the first"
// matters.
func Candidates(n int) []engine.Worker {
	ws := make([]engine.Worker, n)
	x := uint32(2463534242) // xorshift32, seeded the same on every call
	next := func() int {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		return int(x >> 1)
	}
	for i := range ws {
		maxInFlight := 1 + next()%8
		inFlight := next() % (maxInFlight + 1)
		tags := []string{"eu"}
		if next()%4 == 0 {
			tags = []string{Tag}
		}
		id := fmt.Sprintf("w%03d", i)
		ws[i] = engine.Worker{State: engine.ConsumerStateView{
			ID: id, InFlight: inFlight, MaxInFlight: maxInFlight, BufferDepth: inFlight / 2, Tags: tags,
		}}
	}
	return ws
}

// NewSelection returns the selection every implementation is asked: the
// candidates of [Candidates](n), nothing excluded, attempt 1.
func NewSelection(n int) engine.Selection {
	ch, err := engine.DispatchChannel("bench", "peers")
	if err != nil {
		panic(err) // a constant, valid name
	}
	return engine.NewSelection(ch, "conv-1", 1,
		engine.ActivityRequest{WorkflowID: "wf-1", ActivityType: "render"}, Candidates(n), nil)
}
