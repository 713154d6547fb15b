package scenario_test

import (
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/scenario"
)

// TestChanges: each differing field is named with its path and both
// values, an operation only one journal has is named, and equal lines say
// nothing.
func TestChanges(t *testing.T) {
	golden := `{"seq":1,"kind":"conversation_opened","conversation_id":"c1"}
{"seq":2,"kind":"worker_selected","worker_id":"eu-1","attempt":1,"candidates":[{"id":"eu-1","in_flight":0},{"id":"eu-2","in_flight":1}]}
{"seq":3,"kind":"message_sent","worker_id":"eu-1"}
`
	run := `{"seq":1,"kind":"conversation_opened","conversation_id":"c1"}
{"seq":2,"kind":"worker_selected","worker_id":"eu-2","attempt":1,"candidates":[{"id":"eu-1","in_flight":2},{"id":"eu-2","in_flight":1}],"waited":3}
{"seq":3,"kind":"message_sent","worker_id":"eu-2"}
{"seq":4,"kind":"message_received","worker_id":"eu-2"}
`
	want := []string{
		`op 2 worker_selected: candidates[0].in_flight 0 → 2`,
		`op 2 worker_selected: worker_id "eu-1" → "eu-2"`,
		`op 2 worker_selected: waited (none) → 3`,
		`op 3 message_sent: worker_id "eu-1" → "eu-2"`,
		`op 4 message_received: only in the run`,
	}
	got := scenario.Changes([]byte(golden), []byte(run))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := scenario.Changes([]byte(run), []byte(golden)); len(got) == 0 || got[len(got)-1] != "op 4 message_received: only in the golden journal" {
		t.Errorf("reversed: %q", got)
	}
	if got := scenario.Changes([]byte(golden), []byte(golden)); len(got) != 0 {
		t.Errorf("equal journals: %q", got)
	}
	// Values that differ only past what is shown still differ.
	same := strings.Repeat("m", 80)
	if got := scenario.Changes([]byte(`{"seq":1,"kind":"x","message":"`+same+`a"}`), []byte(`{"seq":1,"kind":"x","message":"`+same+`b"}`)); len(got) != 1 {
		t.Errorf("a difference at the end of a long value: %q", got)
	}
	// Keys only the run has come in the same order every time.
	wide := `{"seq":1,"kind":"x","a":1,"b":2,"c":3,"d":4,"e":5,"f":6}`
	first := strings.Join(scenario.Changes([]byte(`{"seq":1,"kind":"x"}`), []byte(wide)), "\n")
	for range 20 {
		if got := strings.Join(scenario.Changes([]byte(`{"seq":1,"kind":"x"}`), []byte(wide)), "\n"); got != first {
			t.Fatalf("the order changed:\n%s\nthen\n%s", first, got)
		}
	}
	long := `{"seq":1,"kind":"x","message":"` + strings.Repeat("é", 100) + `"}`
	if got := scenario.Changes([]byte(long), []byte(`{"seq":1,"kind":"x","message":"short"}`)); len(got) != 1 || !strings.Contains(got[0], "…") {
		t.Errorf("a long value: %q, want it cut short", got)
	}
}
