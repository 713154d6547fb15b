package journal_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/journal"
)

func emailChannel(t testing.TB) engine.ChannelName {
	ch, err := engine.DispatchChannel("prod", "email")
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func lineSamples(t testing.TB) []engine.Operation {
	ch := emailChannel(t)
	at := time.Date(2026, 11, 25, 20, 0, 0, 123456789, time.UTC)
	base := engine.Operation{Seq: 1, Time: at, WorkflowID: "wf-1", ConversationID: "c1", Channel: ch}
	with := func(f func(*engine.Operation)) engine.Operation {
		op := base
		op.Seq++
		f(&op)
		return op
	}
	return []engine.Operation{
		with(func(op *engine.Operation) {
			op.Kind = engine.OpConversationOpened
			op.State = engine.StateScheduled
			op.Request = engine.ActivityRequest{
				WorkflowID: "wf-1", ActivityType: "send-email", TaskQueue: "email",
				Input:           engine.Payload{ContentType: "application/json", Data: []byte(`{"to":"a@example.com"}`)},
				ScheduleToClose: 10 * time.Second, StartToClose: 1500 * time.Millisecond, ScheduleToStart: 3 * time.Second,
			}
		}),

		with(func(op *engine.Operation) {
			op.Kind = engine.OpWorkerSelected
			op.WorkerID = "w2"
			op.State = engine.StateStarted
			op.Attempt = 2
			op.Router = engine.RouterVersion{Lang: "lua", Hash: "sha256:ab12", Source: "scripts/least_loaded.lua"}
			op.Candidates = []engine.ConsumerStateView{
				{ID: "w2", InFlight: 1, MaxInFlight: 4, BufferDepth: 2, Tags: []string{"eu", "gpu"},
					Labels: map[string]string{"region": "eu", "gpu": "a100", "note": "a \"quoted\" é"}},
				{ID: "w3", MaxInFlight: 1},
			}
			op.Excluded = []string{"w1"}
			op.Waited = 12500 * time.Microsecond
		}),
		with(func(op *engine.Operation) { op.Kind = engine.OpMessageSent; op.WorkerID = "w2"; op.Attempt = 2 }),
		with(func(op *engine.Operation) {
			op.Kind = engine.OpMessageReceived
			op.WorkerID = "w2"
			op.State = engine.StateCompleted
			op.Result = engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte("queued <id 7> & sent")})
		}),
		with(func(op *engine.Operation) {
			op.Kind = engine.OpMessageReceived
			op.State = engine.StateFailed(false)
			op.Result = engine.Failed("smtp: 550 mailbox unavailable")
			op.Message = "smtp: 550 mailbox unavailable"
		}),
		with(func(op *engine.Operation) {
			op.Kind = engine.OpWorkerExited
			op.WorkerID = "w1"
			op.State = engine.StateFailed(true)
			op.Message = "panic: nil map"
		}),
		with(func(op *engine.Operation) {
			op.Kind = engine.OpWorkerTimedOut
			op.State = engine.StateFailed(true)
			op.Message = "start-to-close timeout after 1.5s"
		}),
		with(func(op *engine.Operation) {
			op.Kind = engine.OpConversationClosed
			op.State = engine.StateCompleted
			op.Result = engine.Completed(engine.Payload{ContentType: "application/octet-stream", Data: []byte{0xff, 0x00, 0x01}})
		}),
		with(func(op *engine.Operation) {
			op.Kind = engine.OpConversationClosed
			op.Result = engine.Completed(engine.Payload{ContentType: "application/json", Data: []byte(`{ "spaced": true }`)})
		}),
		with(func(op *engine.Operation) {
			op.Kind = engine.OpConversationClosed
			op.Result = engine.Completed(engine.Payload{ContentType: "application/json", Data: []byte(`null`)})
		}),
		with(func(op *engine.Operation) {
			op.Kind = engine.OpConversationClosed
			op.Result = engine.Completed(engine.Payload{ContentType: "application/vnd.x+json", Data: []byte(`"quoted"`)})
		}),
		{Kind: engine.OpMessageSent}, // everything else absent
		with(func(op *engine.Operation) {
			op.Kind = engine.OpActivityWaiting
			op.State = engine.StateScheduled
			op.Message = "no free slot: all 2 candidates are full"
		}),
	}
}

func TestLineRoundTrip(t *testing.T) {
	for _, op := range lineSamples(t) {
		b, err := journal.AppendLine(nil, op)
		if err != nil {
			t.Fatalf("append %s: %v", op.Kind, err)
		}
		back, err := journal.ParseLine(b)
		if err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if !reflect.DeepEqual(back, op) {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", b, back, op)
		}
	}
}

func TestLineShape(t *testing.T) {
	ops := lineSamples(t)
	for _, tc := range []struct {
		op   engine.Operation
		want string
	}{
		{ops[0], `{"seq":2,"time":"2026-11-25T20:00:00.123456789Z","workflow_id":"wf-1","conversation_id":"c1","channel":"aion.dispatch.prod.email","kind":"conversation_opened","state":{"name":"activity_scheduled"},"request":{"workflow_id":"wf-1","activity_type":"send-email","task_queue":"email","input":{"content_type":"application/json","data":{"to":"a@example.com"}},"schedule_to_close":"10s","start_to_close":"1.5s","schedule_to_start":"3s"}}`},
		{ops[1], `{"seq":2,"time":"2026-11-25T20:00:00.123456789Z","workflow_id":"wf-1","conversation_id":"c1","channel":"aion.dispatch.prod.email","kind":"worker_selected","worker_id":"w2","state":{"name":"activity_started"},"attempt":2,"waited":"12.5ms","router":{"lang":"lua","hash":"sha256:ab12","source":"scripts/least_loaded.lua"},"candidates":[{"id":"w2","in_flight":1,"max_in_flight":4,"buffer_depth":2,"tags":["eu","gpu"],"labels":{"gpu":"a100","note":"a \"quoted\" é","region":"eu"}},{"id":"w3","in_flight":0,"max_in_flight":1,"buffer_depth":0}],"excluded":["w1"]}`},
		{ops[4], `{"seq":2,"time":"2026-11-25T20:00:00.123456789Z","workflow_id":"wf-1","conversation_id":"c1","channel":"aion.dispatch.prod.email","kind":"message_received","state":{"name":"activity_failed","retry_eligible":false},"result":{"status":"failed","error":"smtp: 550 mailbox unavailable"},"message":"smtp: 550 mailbox unavailable"}`},
		{ops[5], `{"seq":2,"time":"2026-11-25T20:00:00.123456789Z","workflow_id":"wf-1","conversation_id":"c1","channel":"aion.dispatch.prod.email","kind":"worker_exited","worker_id":"w1","state":{"name":"activity_failed","retry_eligible":true},"message":"panic: nil map"}`},
		{ops[7], `{"seq":2,"time":"2026-11-25T20:00:00.123456789Z","workflow_id":"wf-1","conversation_id":"c1","channel":"aion.dispatch.prod.email","kind":"conversation_closed","state":{"name":"activity_completed"},"result":{"status":"completed","output":{"content_type":"application/octet-stream","data_base64":"/wAB"}}}`},
		{ops[8], `{"seq":2,"time":"2026-11-25T20:00:00.123456789Z","workflow_id":"wf-1","conversation_id":"c1","channel":"aion.dispatch.prod.email","kind":"conversation_closed","result":{"status":"completed","output":{"content_type":"application/json","data":"{ \"spaced\": true }"}}}`},
		{ops[11], `{"kind":"message_sent"}`},
		{ops[len(ops)-1], `{"seq":2,"time":"2026-11-25T20:00:00.123456789Z","workflow_id":"wf-1","conversation_id":"c1","channel":"aion.dispatch.prod.email","kind":"activity_waiting","state":{"name":"activity_scheduled"},"message":"no free slot: all 2 candidates are full"}`},
	} {
		b, err := journal.AppendLine(nil, tc.op)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.op.Kind, b, tc.want)
		}
	}
}

func TestParseLineRejects(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`{}`, "missing kind"},
		{`{"kind":"worker_teleported"}`, "unknown operation kind"},
		{`{"kind":"message_sent","state":{"name":"activity_paused"}}`, "unknown activity state"},
		{`{"kind":"message_sent","state":{"name":"activity_started","retry_eligible":true}}`, "cannot be retry eligible"},
		{`{"kind":"message_sent","state":{}}`, "missing name"},
		{`{"kind":"message_sent","channel":"prod.email"}`, "invalid channel"},
		{`{"kind":"message_sent","result":{"status":"maybe"}}`, "unknown status"},
		{`{"kind":"message_sent","result":{"status":"failed","output":{"data":"x"}}}`, "failed with an output"},
		{`{"kind":"message_sent","result":{"status":"completed","error":"x"}}`, "completed with an error"},
		{`{"kind":"conversation_opened","request":{"start_to_close":"soon"}}`, "start_to_close"},
		{`{"kind":"message_sent","result":{"status":"completed","output":{"data":"x","data_base64":"eA=="}}}`, "both data and data_base64"},
		{`{"kind":"message_sent","result":{"status":"completed","output":{"data_base64":"!!"}}}`, "data_base64"},
		{`{"kind":"message_sent","seq":-1}`, "seq"},
	} {
		_, err := journal.ParseLine([]byte(tc.line))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("unmarshal %s: err = %v, want one containing %q", tc.line, err, tc.want)
		}
	}
}

func TestAppendLineRejectsInvalidValues(t *testing.T) {
	for name, op := range map[string]engine.Operation{
		"no kind":         {},
		"retry started":   {Kind: engine.OpMessageSent, State: engine.ActivityState{Name: engine.ActivityStarted, RetryEligible: true}},
		"result status 9": {Kind: engine.OpMessageSent, Result: engine.ActivityResult{Status: 9}},
		"failed with output": {Kind: engine.OpMessageSent, Result: engine.ActivityResult{Status: engine.StatusFailed,
			Error: "x", Output: engine.Payload{Data: []byte("y")}}},
		"completed with error": {Kind: engine.OpMessageSent, Result: engine.ActivityResult{Status: engine.StatusCompleted, Error: "x"}},
	} {
		if b, err := journal.AppendLine([]byte("x"), op); err == nil || string(b) != "x" {
			t.Errorf("%s: AppendLine = %q, %v; want x and an error", name, b, err)
		}
	}
}

// FuzzLine checks that whatever line parses is written back to a line that
// parses to the same operation.
func FuzzLine(f *testing.F) {
	for _, op := range lineSamples(f) {
		b, err := journal.AppendLine(nil, op)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"kind":"message_sent","result":{"status":"completed","output":{"content_type":"application/json","data":[1,2]}}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		op, err := journal.ParseLine(line)
		if err != nil {
			return
		}
		b, err := journal.AppendLine(nil, op)
		if err != nil {
			t.Fatalf("append of an accepted line %s: %v", line, err)
		}
		back, err := journal.ParseLine(b)
		if err != nil {
			t.Fatalf("re-read of %s: %v", b, err)
		}
		if !reflect.DeepEqual(normaliseSlices(back), normaliseSlices(op)) {
			t.Fatalf("not stable:\n first %+v\nsecond %+v", op, back)
		}
	})
}

// normaliseSlices maps empty slices to nil, which the JSON form does not tell apart.
func normaliseSlices(op engine.Operation) engine.Operation {
	if len(op.Candidates) == 0 {
		op.Candidates = nil
	}
	for i := range op.Candidates {
		if len(op.Candidates[i].Tags) == 0 {
			op.Candidates[i].Tags = nil
		}
		if len(op.Candidates[i].Labels) == 0 {
			op.Candidates[i].Labels = nil
		}
	}
	if len(op.Excluded) == 0 {
		op.Excluded = nil
	}
	return op
}

func TestAppendLineWritesUTC(t *testing.T) {
	at := time.Date(2026, 11, 25, 21, 0, 0, 0, time.FixedZone("CET", 3600))
	b, err := journal.AppendLine(nil, engine.Operation{Kind: engine.OpMessageSent, Time: at})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"time":"2026-11-25T20:00:00Z","kind":"message_sent"}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
}

func TestAppendLineRejectsYearsRFC3339CannotWrite(t *testing.T) {
	op := engine.Operation{Kind: engine.OpMessageSent, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := journal.AppendLine(nil, op); err == nil {
		t.Error("year 10000 was written")
	}
}

// TestParseLineSyntaxError: a line that is not JSON fails with the syntax
// error itself, as when lines were decoded with json.Unmarshal.
func TestParseLineSyntaxError(t *testing.T) {
	for _, line := range []string{`{"kind":`, `{"kind":"message_sent"} x`, `nope`, ``} {
		_, err := journal.ParseLine([]byte(line))
		var v struct{}
		want := json.Unmarshal([]byte(line), &v)
		var se *json.SyntaxError
		if err == nil || err.Error() != want.Error() || !errors.As(err, &se) {
			t.Errorf("ParseLine(%q) = %v, want %v", line, err, want)
		}
	}
}
