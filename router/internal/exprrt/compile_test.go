package exprrt

import (
	"errors"
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/router/internal/call"
)

// TestMessagesNameNoGoTypes: expr's messages name the environment's Go
// types by their package-qualified names; a script's author sees its own
// words instead. The rewording depends on this package's name, which these
// cases pin.
func TestMessagesNameNoGoTypes(t *testing.T) {
	limits := Limits{MaxNodes: 10_000, MemoryBudget: 1_000_000, PoolSize: 1}
	for _, tc := range []struct{ src, want string }{
		{`candidates[0].inflight`, "a candidate has no field inflight (it has id, in_flight, max_in_flight, buffer_depth, available, tags)"},
		{`request.regoin`, "the request has no field regoin (it has namespace, task_queue, channel, workflow_id, conversation_id, attempt, activity_type, input_content_type, input)"},
		{`candidates[0] in candidates`, `a candidate cannot be looked for in a list with "in"`},
		{`candidates + 1`, "a list of candidates"},
	} {
		_, err := Compile([]byte(tc.src), limits)
		var ce *call.Error
		if !errors.As(err, &ce) {
			t.Errorf("%s: %v, want a *call.Error", tc.src, err)
			continue
		}
		if !strings.Contains(ce.Message, tc.want) || strings.Contains(ce.Message, "exprrt.") {
			t.Errorf("%s: %q, want it to say %q in the script's words", tc.src, ce.Message, tc.want)
		}
	}
}
