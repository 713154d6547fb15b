package journal_test

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
)

// waitStep is one line of a hand-written journal on prod/email: its
// conversation, workflow, kind and the rest of its fields.
func waitStep(conv, wf, kind, rest string) string {
	s := fmt.Sprintf(`{"seq":0,"workflow_id":%q,"conversation_id":%q,"channel":"aion.dispatch.prod.email","kind":%q`, wf, conv, kind)
	if rest != "" {
		s += "," + rest
	}
	return s + "}"
}

const (
	twoCandidates = `"candidates":[{"id":"w1","in_flight":1,"max_in_flight":1,"buffer_depth":0},{"id":"w2","in_flight":1,"max_in_flight":2,"buffer_depth":0}]`
	router1       = `"router":{"lang":"lua","hash":"sha256:ab","source":"pick.lua"}`
	scheduled     = `"state":{"name":"activity_scheduled"}`
	started       = `"state":{"name":"activity_started"}`
	retryable     = `"state":{"name":"activity_failed","retry_eligible":true}`
	completed     = `"state":{"name":"activity_completed"},"result":{"status":"completed","output":{"content_type":"text/plain","data":"sent"}}`
)

func waitRequest(wf, input, extra string) string {
	return fmt.Sprintf(`"request":{"workflow_id":%q,"activity_type":"send-email","task_queue":"email","input":{"content_type":"text/plain","data":%q}%s}`, wf, input, extra)
}

// waitLines is a journal of a saturated channel, numbered by renumber:
//
//	c1  1-6   waits (no free slot), w1 is selected after 1.5s and answers
//	c2  7-15  w1 exits; attempt 2 waits (w2 is full) and goes to w2 after 250ms
//	c3  16-18 waits (no workers subscribed) past its schedule-to-start
//	c4  19-21 waits (the script chose none) past its schedule-to-close
//	c5  22-24 waits until the caller gives up
//	c6  25-30 w1 exits; attempt 2 waits past its schedule-to-start
func waitLines() []string {
	return []string{
		waitStep("c1", "wf-1", "conversation_opened", scheduled+","+waitRequest("wf-1", "a", `,"schedule_to_start":"10s"`)),
		waitStep("c1", "wf-1", "activity_waiting", scheduled+`,"message":"no free slot: all 2 candidates are full","attempt":1`),
		waitStep("c1", "wf-1", "worker_selected", `"worker_id":"w1",`+started+`,"attempt":1,"waited":"1.5s",`+router1+","+twoCandidates),
		waitStep("c1", "wf-1", "message_sent", `"worker_id":"w1","attempt":1`),
		waitStep("c1", "wf-1", "message_received", `"worker_id":"w1",`+completed+`,"attempt":1`),
		waitStep("c1", "wf-1", "conversation_closed", `"worker_id":"w1",`+completed+`,"attempt":1`),

		waitStep("c2", "wf-2", "conversation_opened", scheduled+","+waitRequest("wf-2", "b", "")),
		waitStep("c2", "wf-2", "worker_selected", `"worker_id":"w1",`+started+`,"attempt":1,`+router1+","+twoCandidates),
		waitStep("c2", "wf-2", "message_sent", `"worker_id":"w1","attempt":1`),
		waitStep("c2", "wf-2", "worker_exited", `"worker_id":"w1",`+retryable+`,"message":"panic: crash","attempt":1`),
		waitStep("c2", "wf-2", "activity_waiting", scheduled+`,"message":"worker w2 is full","attempt":2`),
		waitStep("c2", "wf-2", "worker_selected", `"worker_id":"w2",`+started+`,"attempt":2,"waited":"250ms",`+router1+
			`,"candidates":[{"id":"w2","in_flight":1,"max_in_flight":2,"buffer_depth":0}],"excluded":["w1"]`),
		waitStep("c2", "wf-2", "message_sent", `"worker_id":"w2","attempt":2`),
		waitStep("c2", "wf-2", "message_received", `"worker_id":"w2",`+completed+`,"attempt":2`),
		waitStep("c2", "wf-2", "conversation_closed", `"worker_id":"w2",`+completed+`,"attempt":2`),

		waitStep("c3", "wf-3", "conversation_opened", scheduled+","+waitRequest("wf-3", "c", `,"schedule_to_start":"2s"`)),
		waitStep("c3", "wf-3", "activity_waiting", scheduled+`,"message":"no workers subscribed","attempt":1`),
		waitStep("c3", "wf-3", "conversation_closed", retryable+`,"message":"schedule-to-start timeout after 2s","attempt":1`),

		waitStep("c4", "wf-4", "conversation_opened", scheduled+","+waitRequest("wf-4", "d", `,"schedule_to_close":"5s"`)),
		waitStep("c4", "wf-4", "activity_waiting", scheduled+`,"message":"the script lua pick.lua sha256:ab chose none of 2 candidates (w1, w2)","attempt":1`),
		waitStep("c4", "wf-4", "conversation_closed", retryable+`,"message":"schedule-to-close timeout after 5s","attempt":1`),

		waitStep("c5", "wf-5", "conversation_opened", scheduled+","+waitRequest("wf-5", "e", "")),
		waitStep("c5", "wf-5", "activity_waiting", scheduled+`,"message":"no free slot: all 2 candidates are full","attempt":1`),
		waitStep("c5", "wf-5", "conversation_closed", retryable+`,"message":"context canceled","attempt":1`),

		waitStep("c6", "wf-6", "conversation_opened", scheduled+","+waitRequest("wf-6", "f", `,"schedule_to_start":"2s"`)),
		waitStep("c6", "wf-6", "worker_selected", `"worker_id":"w1",`+started+`,"attempt":1,`+router1+","+twoCandidates),
		waitStep("c6", "wf-6", "message_sent", `"worker_id":"w1","attempt":1`),
		waitStep("c6", "wf-6", "worker_exited", `"worker_id":"w1",`+retryable+`,"message":"panic: crash","attempt":1`),
		waitStep("c6", "wf-6", "activity_waiting", scheduled+`,"message":"no free slot: the 1 candidate is full","attempt":2`),
		waitStep("c6", "wf-6", "conversation_closed", retryable+`,"message":"schedule-to-start timeout after 2s","attempt":2`),
	}
}

var seqField = regexp.MustCompile(`"seq":\d+`)

// renumber gives the lines seq 1, 2, 3, … and joins them into a journal.
func renumber(lines []string) []byte {
	var b bytes.Buffer
	for i, l := range lines {
		b.WriteString(seqField.ReplaceAllString(l, fmt.Sprintf(`"seq":%d`, i+1)))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func readWaits(t *testing.T, lines []string) []engine.Operation {
	t.Helper()
	ops, truncated, err := journal.ReadAll(bytes.NewReader(renumber(lines)))
	if err != nil || truncated != 0 {
		t.Fatalf("read: %v, a torn line at %d", err, truncated)
	}
	return ops
}

// TestCheckWaits: the checker knows activity_waiting (after an opening or
// an exit, once per wait, of the attempt it waits to start, with no worker
// and a reason) and waited (only on the selection that ends a wait).
func TestCheckWaits(t *testing.T) {
	lines := waitLines()
	if p := check(readWaits(t, lines)); len(p) != 0 {
		t.Fatalf("a journal with waits has problems: %v", p)
	}
	// edit replaces old with new in the n-th line (1-based).
	edit := func(l []string, n int, old, new string) []string {
		if !strings.Contains(l[n-1], old) {
			t.Fatalf("line %d lacks %s: %s", n, old, l[n-1])
		}
		l[n-1] = strings.Replace(l[n-1], old, new, 1)
		return l
	}
	wait := func(conv, wf string, attempt int) string {
		return waitStep(conv, wf, "activity_waiting", scheduled+fmt.Sprintf(`,"message":"worker w1 is full","attempt":%d`, attempt))
	}
	for _, tc := range []struct {
		name string
		edit func([]string) []string
		want string
	}{
		{"a wait after message_sent", func(l []string) []string {
			return slices.Insert(l, 4, wait("c1", "wf-1", 1))
		}, "line 5: conversation c1: activity_waiting cannot follow message_sent"},
		// A worker that did not start the activity sends it back to the
		// backlog after its selection, but to wait for the next attempt.
		{"a wait after worker_selected of its attempt", func(l []string) []string {
			return slices.Insert(l, 8, wait("c2", "wf-2", 1))
		}, "line 9: conversation c2: activity_waiting of attempt 1, but it waits to start attempt 2"},
		{"a wait after message_received", func(l []string) []string {
			return slices.Insert(l, 5, wait("c1", "wf-1", 1))
		}, "line 6: conversation c1: activity_waiting cannot follow message_received"},
		{"two waits in a row", func(l []string) []string {
			return slices.Insert(l, 2, wait("c1", "wf-1", 1))
		}, "line 3: conversation c1: activity_waiting cannot follow activity_waiting"},
		{"a wait before the opening", func(l []string) []string {
			return slices.Insert(l, 0, wait("c0", "wf-0", 1))
		}, "line 1: conversation c0: activity_waiting before conversation_opened"},
		{"a wait after the close", func(l []string) []string {
			return slices.Insert(l, 6, wait("c1", "wf-1", 1))
		}, "line 7: conversation c1: activity_waiting after conversation_closed (line 6)"},
		{"a wait of the attempt that exited", func(l []string) []string {
			return edit(l, 11, `"attempt":2`, `"attempt":1`)
		}, "line 11: conversation c2: activity_waiting of attempt 1, but it waits to start attempt 2"},
		{"a first wait of attempt 2", func(l []string) []string {
			return edit(l, 2, `"attempt":1`, `"attempt":2`)
		}, "line 2: conversation c1: activity_waiting of attempt 2, but it waits to start attempt 1"},
		{"a wait with a worker", func(l []string) []string {
			return edit(l, 11, `"kind":"activity_waiting",`, `"kind":"activity_waiting","worker_id":"w2",`)
		}, "line 11: conversation c2: activity_waiting of worker w2, but a waiting activity has no worker"},
		{"a wait with another state", func(l []string) []string {
			return edit(l, 2, scheduled, started)
		}, "line 2: conversation c1: activity_waiting with state activity_started, want activity_scheduled"},
		{"a wait without a reason", func(l []string) []string {
			return edit(l, 17, `"message":"no workers subscribed",`, ``)
		}, "line 17: conversation c3: activity_waiting without a message saying why it waits"},
		{"waited on a selection that did not follow a wait", func(l []string) []string {
			return edit(l, 8, `"attempt":1,`, `"attempt":1,"waited":"1s",`)
		}, "line 8: conversation c2: worker_selected with waited 1s, but no activity_waiting before it"},
		{"waited on the selection after an exit, without a wait", func(l []string) []string {
			l = slices.Delete(l, 10, 11) // c2's activity_waiting
			return l
		}, "line 11: conversation c2: worker_selected with waited 250ms, but no activity_waiting before it"},
		{"waited on another kind", func(l []string) []string {
			return edit(l, 4, `"attempt":1`, `"attempt":1,"waited":"1s"`)
		}, "line 4: conversation c1: message_sent with waited 1s: only a worker_selected that ends a wait has one"},
		{"a negative waited", func(l []string) []string {
			return edit(l, 3, `"waited":"1.5s"`, `"waited":"-1.5s"`)
		}, "line 3: conversation c1: worker_selected with a negative waited -1.5s"},
		{"a selection after a wait of another attempt", func(l []string) []string {
			return edit(l, 3, `"attempt":1,"waited"`, `"attempt":2,"waited"`)
		}, "line 3: conversation c1: worker_selected of attempt 2 during attempt 1"},
		{"the close after a wait naming the next attempt", func(l []string) []string {
			return edit(l, 18, `"attempt":1`, `"attempt":2`)
		}, "line 18: conversation c3: conversation_closed of attempt 2, but the activity_waiting at line 17 waits to start attempt 1"},
		{"the close after a wait naming the attempt that exited", func(l []string) []string {
			return edit(l, 30, `"attempt":2`, `"attempt":1`)
		}, "line 30: conversation c6: conversation_closed of attempt 1, but the activity_waiting at line 29 waits to start attempt 2"},
		{"the close after a wait with another state", func(l []string) []string {
			return edit(l, 21, retryable, `"state":{"name":"activity_failed","retry_eligible":false}`)
		}, "line 21: conversation c4: conversation_closed after activity_waiting (line 20) with state activity_failed (retry_eligible false), want activity_failed with retry_eligible true"},
		{"the close after a wait with a result", func(l []string) []string {
			return edit(l, 18, `"message"`, `"result":{"status":"failed","error":"late"},"message"`)
		}, "line 18: conversation c3: conversation_closed with result failed (late), but no message_received"},
		{"a step of the attempt after a wait with no selection", func(l []string) []string {
			return slices.Insert(l, 17, waitStep("c3", "wf-3", "message_sent", `"worker_id":"w1","attempt":1`))
		}, "line 18: conversation c3: message_sent cannot follow activity_waiting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops := readWaits(t, tc.edit(slices.Clone(lines)))
			problems := check(ops)
			found := false
			for _, p := range problems {
				found = found || (strings.Contains(p.Error(), tc.want) && strings.HasPrefix(p.Error(), "line "))
			}
			if !found {
				t.Errorf("problems = %v, want one saying %q with its line", problems, tc.want)
			}
		})
	}
}
