package main

import (
	"errors"
	"strings"
	"testing"
)

// FuzzReadRequests feeds arbitrary input to the requests reader: it must
// never panic, must number lines as they are in the input, and every line
// is either an activity or a located error.
func FuzzReadRequests(f *testing.F) {
	f.Add(`{"channel": "prod/email", "workflow_id": "wf-1", "activity_type": "send", "input": {"to": "a"}}` + "\n")
	f.Add(`{"channel": "prod/sms", "workflow_id": "wf-2", "activity_type": "text", "input": "hi", "start_to_close": "2s"}`)
	f.Add("\n\n{\"channel\": \"prod\"}\nnot json\r\n")
	f.Add(`{"channel": "a/b", "workflow_id": "w", "activity_type": "t", "schedule_to_close": "-1s"}`)
	f.Fuzz(func(t *testing.T, input string) {
		lines := strings.Count(input, "\n") + 1
		last := 0
		err := readRequests(strings.NewReader(input), "requests.jsonl", func(a activity, err error) bool {
			if a.line <= last || a.line > lines {
				t.Fatalf("line %d after %d, of %d", a.line, last, lines)
			}
			last = a.line
			var le *lineError
			switch {
			case err != nil && !errors.As(err, &le):
				t.Fatalf("an error without its line: %v", err)
			case err == nil && (a.channel.IsZero() || a.req.WorkflowID == "" || a.req.ActivityType == ""):
				t.Fatalf("an activity without channel, workflow or type: %+v", a)
			}
			return true
		})
		if err != nil {
			t.Fatalf("reading from a string: %v", err)
		}
	})
}

func TestReadRequestsLongLine(t *testing.T) {
	input := "{\"x\": \"" + strings.Repeat("a", maxRequestLine+10) + "\"}\n" +
		`{"channel": "prod/email", "workflow_id": "wf-2", "activity_type": "send"}` + "\n"
	var got []string
	err := readRequests(strings.NewReader(input), "r.jsonl", func(a activity, err error) bool {
		if err != nil {
			got = append(got, err.Error())
		} else {
			got = append(got, a.req.WorkflowID)
		}
		return true
	})
	if err != nil || len(got) != 2 || !strings.HasPrefix(got[0], "r.jsonl:1: line longer than") || got[1] != "wf-2" {
		t.Fatalf("got %q, %v; want the long line reported and the next one read", got, err)
	}
}
