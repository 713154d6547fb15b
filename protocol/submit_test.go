package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/protocol"
)

func TestSubmissionRequest(t *testing.T) {
	ch, err := engine.DispatchChannel("prod", "upper")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in string
		want     engine.ActivityRequest
		err      string
	}{
		{"json input", `{"workflow_id": "wf", "activity_type": "up", "input": {"text": "hi"}, "start_to_close": "2s"}`,
			engine.ActivityRequest{WorkflowID: "wf", ActivityType: "up", TaskQueue: "upper", StartToClose: 2 * time.Second,
				Input: engine.Payload{ContentType: "application/json", Data: []byte(`{"text":"hi"}`)}}, ""},
		{"text input", `{"workflow_id": "wf", "activity_type": "up", "input": "hi"}`,
			engine.ActivityRequest{WorkflowID: "wf", ActivityType: "up", TaskQueue: "upper",
				Input: engine.Payload{ContentType: "text/plain", Data: []byte("hi")}}, ""},
		{"missing", `{"input": 1}`, engine.ActivityRequest{}, "missing workflow_id and activity_type"},
		{"bad duration", `{"workflow_id": "wf", "activity_type": "up", "schedule_to_close": "soon"}`, engine.ActivityRequest{}, `schedule_to_close "soon"`},
		{"zero duration", `{"workflow_id": "wf", "activity_type": "up", "start_to_close": "0s"}`, engine.ActivityRequest{}, "positive duration"},
		{"start after close", `{"workflow_id": "wf", "activity_type": "up", "schedule_to_start": "5s", "schedule_to_close": "1s"}`,
			engine.ActivityRequest{}, "longer than schedule_to_close"},
		{"text as json", `{"workflow_id": "wf", "activity_type": "up", "input": "hi", "content_type": "application/json"}`,
			engine.ActivityRequest{}, "give the JSON value itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := protocol.ParseSubmission([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Request(ch)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.WorkflowID != tc.want.WorkflowID || got.ActivityType != tc.want.ActivityType || got.TaskQueue != tc.want.TaskQueue ||
				got.StartToClose != tc.want.StartToClose || got.Input.ContentType != tc.want.Input.ContentType ||
				!bytes.Equal(got.Input.Data, tc.want.Input.Data) {
				t.Fatalf("request = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestSubmissionRequestProblems: a refused submission yields every one of
// its problems, in the order of the fields, each in its own words and
// together on one line.
func TestSubmissionRequestProblems(t *testing.T) {
	ch, err := engine.DispatchChannel("prod", "upper")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"missing one", `{"activity_type": "up"}`, []string{"missing workflow_id"}},
		{"missing both", `{}`, []string{"missing workflow_id and activity_type"}},
		{"every field", `{"input": "hi", "content_type": "application/json", "start_to_close": "x",
			"schedule_to_close": "-1s", "schedule_to_start": "0s"}`, []string{
			"missing workflow_id and activity_type",
			"input: the content type says JSON but the data is not JSON (content type application/json); give the JSON value itself, not a string, or another content_type",
			`start_to_close "x": want a positive duration such as 2s`,
			`schedule_to_close "-1s": want a positive duration such as 2s`,
			`schedule_to_start "0s": want a positive duration such as 2s`,
		}},
		{"bad duration and start after close", `{"workflow_id": "wf", "activity_type": "up", "start_to_close": "soon",
			"schedule_to_start": "5s", "schedule_to_close": "1s"}`, []string{
			`start_to_close "soon": want a positive duration such as 2s`,
			"schedule_to_start 5s is longer than schedule_to_close 1s, which bounds the whole activity",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := protocol.ParseSubmission([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Request(ch)
			var re *protocol.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v (%T), want a *RequestError", err, err)
			}
			var got []string
			for _, p := range re.Problems {
				got = append(got, p.Error())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("problems:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			if err.Error() != strings.Join(tc.want, "; ") {
				t.Fatalf("message %q, want the problems joined by \"; \"", err)
			}
		})
	}
}

func TestParseSubmissionIsStrict(t *testing.T) {
	for _, in := range []string{
		`{"workflow_id": "wf", "activity_type": "up", "priority": 1}`,
		`{"workflow_id": "wf", "workflow_id": "wf2", "activity_type": "up"}`,
		`{"workflow_id": "wf", "activity_type": "up"} trailing`,
		`{"workflow_id": "wf", "activity_type": "up", "input": {"a": 1, "a": 2}}`,
		`[1]`, `not json`,
	} {
		if _, err := protocol.ParseSubmission([]byte(in)); err == nil {
			t.Errorf("ParseSubmission(%s) accepted it", in)
		}
	}
}

// An answer's output reads back as the payload it was made from, whatever
// its content type.
func TestAnswerOutputRoundTrip(t *testing.T) {
	for _, p := range []engine.Payload{
		{ContentType: "application/json", Data: []byte(`{"upper":"HI"}`)},
		{ContentType: "application/vnd.x+json", Data: []byte(`"a json string"`)},
		{ContentType: "text/plain", Data: []byte("HI\n")},
		{ContentType: "application/octet-stream", Data: []byte{0xff, 0x00, 0xfe}},
		{ContentType: "application/json", Data: []byte(`not json`)}, // a worker's mislabelled text survives
		{},
	} {
		var a protocol.Answer
		a.SetOutput(p)
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var back protocol.Answer
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		got, err := back.Payload()
		if err != nil {
			t.Fatal(err)
		}
		if got.ContentType != p.ContentType || !bytes.Equal(got.Data, p.Data) {
			t.Errorf("%q %q: answer %s reads back as %q %q", p.ContentType, p.Data, b, got.ContentType, got.Data)
		}
	}
}

func FuzzParseSubmission(f *testing.F) {
	f.Add([]byte(`{"workflow_id": "wf", "activity_type": "up", "input": {"text": "hi"}, "start_to_close": "2s"}`))
	f.Add([]byte(`{"channel": "prod/upper", "workflow_id": "wf", "activity_type": "up", "input": "hi"}`))
	f.Add([]byte(`{"workflow_id": "wf", "activity_type": "up", "input": {"a": [1, {"b": 2}]}, "content_type": "application/json"}`))
	ch, _ := engine.DispatchChannel("prod", "upper")
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := protocol.ParseSubmission(data)
		if err != nil {
			return
		}
		req, err := s.Request(ch)
		if err != nil {
			return
		}
		if req.WorkflowID == "" || req.ActivityType == "" || req.Input.Check() != nil {
			t.Fatalf("accepted %q as %+v", data, req)
		}
	})
}

// TestKindOf: each engine cause has its kind; an error the engine does not
// name is internal.
func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("x: %w", engine.ErrActivityFailed), protocol.KindActivityFailed},
		{fmt.Errorf("x: %w", engine.ErrInvalidRequest), protocol.KindBadRequest},
		{fmt.Errorf("x: %w", engine.ErrUnknownChannel), protocol.KindUnknownChannel},
		{fmt.Errorf("x: %w", engine.ErrBacklogFull), protocol.KindBacklogFull},
		{fmt.Errorf("x: %w", engine.ErrScheduleToStartTimeout), protocol.KindTimeout},
		{fmt.Errorf("x: %w", engine.ErrNoWorkers), protocol.KindNoWorkers},
		{fmt.Errorf("x: %w", engine.ErrRouting), protocol.KindRoutingFailed},
		{errors.New("disk full"), protocol.KindInternal},
	} {
		if got := protocol.KindOf(tc.err); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.err, got, tc.want)
		}
	}
}
