package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// FuzzReadRequests feeds arbitrary input to the requests reader: it must
// never panic, must number lines as they are in the input, and every line
// is either an activity or a located error.
func FuzzReadRequests(f *testing.F) {
	f.Add(`{"channel": "prod/email", "workflow_id": "wf-1", "activity_type": "send", "input": {"to": "a"}}` + "\n")
	f.Add(`{"channel": "prod/sms", "workflow_id": "wf-2", "activity_type": "text", "input": "hi", "start_to_close": "2s"}`)
	f.Add("\n\n{\"channel\": \"prod\"}\nnot json\r\n")
	f.Add(`{"channel": "a/b", "workflow_id": "w", "activity_type": "t", "schedule_to_close": "-1s"}`)
	f.Add(`{"channel": "a/b", "workflow_id": "w", "activity_type": "t", "schedule_to_start": "3s", "schedule_to_close": "2s"}`)
	f.Add("\uFEFF" + `{"channel": "a/b", "workflow_id": "w", "activity_type": "t", "input": {"k": 1, "k": 2}}`)
	f.Add(`{"channel": "a/b", "Channel": "c/d", "workflow_id": "w", "activity_type": "t"}` + "\n\uFEFF{}")
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

// TestRequestLinesWithDuplicateKeys: a key given twice is refused, with
// the line and the key, wherever it is, so that no activity runs with one
// of two values chosen silently (encoding/json keeps the last; other
// readers of the same line, a worker decoding the input, may keep the
// first). Keys that differ only in case are the same field to the decoder,
// so they count as given twice too, except in the input, which is data.
func TestRequestLinesWithDuplicateKeys(t *testing.T) {
	const head = `{"channel":"prod/email","workflow_id":"wf-1","activity_type":"send"`
	for _, tc := range []struct{ line, want string }{
		{head + `,"workflow_id":"wf-2"}`, `requests.jsonl:1: duplicate key "workflow_id"`},
		{`{"channel":"prod/email","channel":"prod/sms","workflow_id":"wf-1","activity_type":"send"}`, `requests.jsonl:1: duplicate key "channel"`},
		{head + `,"Channel":"prod/sms"}`, `requests.jsonl:1: duplicate key "Channel" (the same field as "channel")`},
		{head + `,"input":{"to":"a","to":"b"}}`, `requests.jsonl:1: duplicate key "to" in input`},
		{head + `,"input":{"items":[{"id":1},{"id":2,"id":3}]}}`, `requests.jsonl:1: duplicate key "id" in input.items[1]`},
		{head + `,"input":[{"a":{"b":1,"b":2}}]}`, `requests.jsonl:1: duplicate key "b" in input[0].a`},
	} {
		var got []string
		err := readRequests(strings.NewReader(tc.line+"\n"), "requests.jsonl", func(a activity, err error) bool {
			if err != nil {
				got = append(got, err.Error())
			}
			return true
		})
		if err != nil || len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s\n  got %q, %v\n  want [%q]", tc.line, got, err, tc.want)
		}
	}
	// Keys that only look alike are different keys.
	for _, line := range []string{
		head + `,"input":{"to":"a","To":"b","t o":"c"}}`,
		head + `,"input":[{"id":1},{"id":1}]}`,
		head + `,"input":{"a":{"id":1},"b":{"id":1}}}`,
		head + `,"input":"{\"to\":\"a\"}"}`,
	} {
		if _, err := parseRequest([]byte(line)); err != nil {
			t.Errorf("%s: %v", line, err)
		}
	}
}

// TestRouteFlagsWithDuplicateKeys: --request and --candidates refuse a key
// given twice as requests lines do.
func TestRouteFlagsWithDuplicateKeys(t *testing.T) {
	if _, err := readRouteRequest(`{"workflow_id":"a","workflow_id":"b"}`, strings.NewReader("")); err == nil ||
		!strings.Contains(err.Error(), `duplicate key "workflow_id"`) {
		t.Errorf("--request: %v", err)
	}
	if _, err := readCandidates(`[{"id":"a"},{"id":"b","in_flight":1,"in_flight":2}]`, strings.NewReader("")); err == nil ||
		!strings.Contains(err.Error(), `candidate 2: duplicate key "in_flight"`) {
		t.Errorf("--candidates: %v", err)
	}
}

// TestReadRequestsByteOrderMark: a UTF-8 byte-order mark at the start of
// a requests file, as some editors write, is not part of the first line;
// one anywhere else is an error of its line.
func TestReadRequestsByteOrderMark(t *testing.T) {
	const line = `{"channel": "prod/email", "workflow_id": "wf-%d", "activity_type": "send"}`
	for _, tc := range []struct {
		name, input string
		want        []string
	}{
		{"at the start", "\uFEFF" + fmt.Sprintf(line, 1) + "\n" + fmt.Sprintf(line, 2) + "\n", []string{"1 wf-1", "2 wf-2"}},
		{"alone on the first line", "\uFEFF\n" + fmt.Sprintf(line, 2) + "\n", []string{"2 wf-2"}},
		{"at the start, CRLF", "\uFEFF" + fmt.Sprintf(line, 1) + "\r\n", []string{"1 wf-1"}},
		{"on a later line", fmt.Sprintf(line, 1) + "\n\uFEFF" + fmt.Sprintf(line, 2) + "\n",
			[]string{"1 wf-1", "r.jsonl:2: a byte-order mark (U+FEFF) is allowed only at the start of the file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			err := readRequests(strings.NewReader(tc.input), "r.jsonl", func(a activity, err error) bool {
				if err != nil {
					got = append(got, err.Error())
				} else {
					got = append(got, fmt.Sprintf("%d %s", a.line, a.req.WorkflowID))
				}
				return true
			})
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestRequestLineTimeouts: start_to_close, schedule_to_close and
// schedule_to_start are positive durations; a schedule_to_start longer
// than the schedule_to_close that bounds everything is refused, with its
// line.
func TestRequestLineTimeouts(t *testing.T) {
	const head = `{"channel":"prod/email","workflow_id":"wf-1","activity_type":"send"`
	for _, tc := range []struct {
		name, keys string
		want       engine.ActivityRequest // its three timeouts
		err        string                 // the line's error, if refused
	}{
		{"none", ``, engine.ActivityRequest{}, ""},
		{"all three", `,"start_to_close":"1s","schedule_to_close":"10s","schedule_to_start":"2s"`,
			engine.ActivityRequest{StartToClose: time.Second, ScheduleToClose: 10 * time.Second, ScheduleToStart: 2 * time.Second}, ""},
		{"schedule_to_start alone", `,"schedule_to_start":"1m30s"`,
			engine.ActivityRequest{ScheduleToStart: 90 * time.Second}, ""},
		{"schedule_to_start as long as schedule_to_close", `,"schedule_to_close":"2s","schedule_to_start":"2s"`,
			engine.ActivityRequest{ScheduleToClose: 2 * time.Second, ScheduleToStart: 2 * time.Second}, ""},
		{"schedule_to_start longer than schedule_to_close", `,"schedule_to_close":"2s","schedule_to_start":"2.5s"`, engine.ActivityRequest{},
			`r.jsonl:1: schedule_to_start 2.5s is longer than schedule_to_close 2s, which bounds the whole activity`},
		{"schedule_to_start zero", `,"schedule_to_start":"0s"`, engine.ActivityRequest{},
			`r.jsonl:1: schedule_to_start "0s": want a positive duration such as 2s`},
		{"schedule_to_start negative", `,"schedule_to_start":"-1s"`, engine.ActivityRequest{},
			`r.jsonl:1: schedule_to_start "-1s": want a positive duration such as 2s`},
		{"schedule_to_start not a duration", `,"schedule_to_start":"soon"`, engine.ActivityRequest{},
			`r.jsonl:1: schedule_to_start "soon": want a positive duration such as 2s`},
		{"schedule_to_start not a string", `,"schedule_to_start":2}`, engine.ActivityRequest{},
			`r.jsonl:1: schedule_to_start: want a string, not a JSON number`},
		{"schedule_to_start twice", `,"schedule_to_start":"1s","Schedule_To_Start":"2s"`, engine.ActivityRequest{},
			`r.jsonl:1: duplicate key "Schedule_To_Start" (the same field as "schedule_to_start")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := head + tc.keys
			if !strings.HasSuffix(line, "}") {
				line += "}"
			}
			var got []activity
			var errs []string
			err := readRequests(strings.NewReader(line+"\n"), "r.jsonl", func(a activity, err error) bool {
				if err != nil {
					errs = append(errs, err.Error())
				} else {
					got = append(got, a)
				}
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			if tc.err != "" {
				if len(got) != 0 || len(errs) != 1 || !strings.HasPrefix(errs[0], tc.err) {
					t.Fatalf("%s\n  got %d activities, errors %q\n  want the error %q…", line, len(got), errs, tc.err)
				}
				return
			}
			if len(errs) != 0 || len(got) != 1 {
				t.Fatalf("%s\n  got %d activities, errors %q; want one activity", line, len(got), errs)
			}
			r := got[0].req
			if r.StartToClose != tc.want.StartToClose || r.ScheduleToClose != tc.want.ScheduleToClose || r.ScheduleToStart != tc.want.ScheduleToStart {
				t.Errorf("%s\n  timeouts start-to-close %s, schedule-to-close %s, schedule-to-start %s; want %s, %s, %s", line,
					r.StartToClose, r.ScheduleToClose, r.ScheduleToStart, tc.want.StartToClose, tc.want.ScheduleToClose, tc.want.ScheduleToStart)
			}
		})
	}
}

// TestParseRequestProblems: a requests line's error holds every problem
// of the line, the channel's first, in the words of
// protocol.Submission.Request.
func TestParseRequestProblems(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`{}`, "missing channel; missing workflow_id and activity_type"},
		{`{"channel": "prod/email", "activity_type": "send"}`, "missing workflow_id"},
		{`{"channel": "prod", "workflow_id": "w", "activity_type": "send"}`, `channel "prod": want NAMESPACE/TASK_QUEUE`},
		{`{"channel": "prod/email", "workflow_id": "w", "activity_type": "send", "start_to_close": "0s", "schedule_to_start": "3s", "schedule_to_close": "2s"}`,
			`start_to_close "0s": want a positive duration such as 2s; schedule_to_start 3s is longer than schedule_to_close 2s, which bounds the whole activity`},
	} {
		_, err := parseRequest([]byte(tc.line))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.line, err, tc.want)
		}
	}
}
