package journal

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/jsonform"
)

// The reference encoder: encoding/json over tagged structs, with a
// MarshalJSON for each nested value. AppendLine must write the same bytes,
// and fail where it fails.

type refOperation struct {
	Seq            uint64                     `json:"seq,omitempty"`
	Time           time.Time                  `json:"time,omitzero"`
	WorkflowID     string                     `json:"workflow_id,omitempty"`
	ConversationID string                     `json:"conversation_id,omitempty"`
	Channel        engine.ChannelName         `json:"channel,omitzero"`
	Kind           engine.OpKind              `json:"kind"`
	WorkerID       string                     `json:"worker_id,omitempty"`
	State          refState                   `json:"state,omitzero"`
	Result         refResult                  `json:"result,omitzero"`
	Message        string                     `json:"message,omitempty"`
	Attempt        int                        `json:"attempt,omitempty"`
	Waited         string                     `json:"waited,omitempty"`
	Router         engine.RouterVersion       `json:"router,omitzero"`
	Candidates     []engine.ConsumerStateView `json:"candidates,omitempty"`
	Excluded       []string                   `json:"excluded,omitempty"`
	Request        refRequest                 `json:"request,omitzero"`
}

type (
	refPayload engine.Payload
	refRequest engine.ActivityRequest
	refResult  engine.ActivityResult
	refState   engine.ActivityState
)

func (p refPayload) IsZero() bool { return engine.Payload(p).IsZero() }
func (r refRequest) IsZero() bool { return engine.ActivityRequest(r).IsZero() }
func (r refResult) IsZero() bool  { return engine.ActivityResult(r).IsZero() }
func (s refState) IsZero() bool   { return engine.ActivityState(s).IsZero() }

type refRequestJSON struct {
	WorkflowID      string     `json:"workflow_id,omitempty"`
	ActivityType    string     `json:"activity_type,omitempty"`
	TaskQueue       string     `json:"task_queue,omitempty"`
	Input           refPayload `json:"input,omitzero"`
	ScheduleToClose string     `json:"schedule_to_close,omitempty"`
	StartToClose    string     `json:"start_to_close,omitempty"`
	ScheduleToStart string     `json:"schedule_to_start,omitempty"`
}

type refResultJSON struct {
	Status string     `json:"status"`
	Output refPayload `json:"output,omitzero"`
	Error  string     `json:"error,omitempty"`
}

// MarshalJSON writes {"content_type", "data"}. Data that is compact JSON
// under a JSON content type is embedded as JSON, so journals stay readable;
// other UTF-8 data is a JSON string; anything else goes to "data_base64".
func (p refPayload) MarshalJSON() ([]byte, error) {
	out := payloadJSON{ContentType: p.ContentType}
	switch {
	case len(p.Data) == 0:
	case jsonform.IsJSONContentType(p.ContentType) && jsonform.Embeddable(p.Data):
		out.Data = p.Data
	case utf8.Valid(p.Data):
		s, err := json.Marshal(string(p.Data))
		if err != nil {
			return nil, err
		}
		out.Data = s
	default:
		out.DataBase64 = base64.StdEncoding.EncodeToString(p.Data)
	}
	return json.Marshal(out)
}

// MarshalJSON writes the request with durations as Go duration strings ("2s").
func (r refRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(refRequestJSON{
		WorkflowID:      r.WorkflowID,
		ActivityType:    r.ActivityType,
		TaskQueue:       r.TaskQueue,
		Input:           refPayload(r.Input),
		ScheduleToClose: durationText(r.ScheduleToClose),
		StartToClose:    durationText(r.StartToClose),
		ScheduleToStart: durationText(r.ScheduleToStart),
	})
}

// MarshalJSON writes {"status": "completed", "output": …} or
// {"status": "failed", "error": …}.
func (r refResult) MarshalJSON() ([]byte, error) {
	switch {
	case r.Status == engine.StatusCompleted && r.Error != "":
		return nil, errors.New("result: completed with an error")
	case r.Status == engine.StatusFailed && !r.Output.IsZero():
		return nil, errors.New("result: failed with an output")
	case r.Status == engine.StatusCompleted:
		return json.Marshal(refResultJSON{Status: "completed", Output: refPayload(r.Output)})
	case r.Status == engine.StatusFailed:
		return json.Marshal(refResultJSON{Status: "failed", Error: r.Error})
	}
	return nil, fmt.Errorf("result: invalid status %d", r.Status)
}

// MarshalJSON writes {"name": …}, with "retry_eligible" on activity_failed.
func (s refState) MarshalJSON() ([]byte, error) {
	out := stateJSON{Name: s.Name}
	if s.Name == engine.ActivityFailed {
		out.RetryEligible = &s.RetryEligible
	} else if s.RetryEligible {
		return nil, fmt.Errorf("state %s cannot be retry eligible", s.Name)
	}
	return json.Marshal(out)
}

// reference encodes op the slow way, with encoding/json.
func reference(op engine.Operation) ([]byte, error) {
	return json.Marshal(refOperation{
		Seq: op.Seq, Time: op.Time.UTC(), WorkflowID: op.WorkflowID, ConversationID: op.ConversationID,
		Channel: op.Channel, Kind: op.Kind, WorkerID: op.WorkerID, State: refState(op.State), Result: refResult(op.Result),
		Message: op.Message, Attempt: op.Attempt, Waited: durationText(op.Waited), Router: op.Router, Candidates: op.Candidates,
		Excluded: op.Excluded, Request: refRequest(op.Request),
	})
}

var encodeSeeds = []string{
	`{"seq":7,"time":"2026-11-25T20:00:00.5Z","workflow_id":"wf<1>","conversation_id":"c&1","channel":"aion.dispatch.prod.email","kind":"worker_selected","worker_id":"w\u2028","state":{"name":"activity_started"},"attempt":2,"router":{"lang":"lua","hash":"sha256:ab","source":"x.lua"},"candidates":[{"id":"w1","in_flight":1,"max_in_flight":4,"buffer_depth":2,"tags":["eu","\t"]},{"id":"w2","in_flight":0,"max_in_flight":1,"buffer_depth":0}],"excluded":["w0"]}`,
	`{"kind":"worker_selected","worker_id":"w1","candidates":[{"id":"w1","in_flight":0,"max_in_flight":1,"buffer_depth":0,"labels":{"z":"last","a<b>":"x&y","\u2028":"","é":"\"q\"\n"}},{"id":"w2","in_flight":0,"max_in_flight":1,"buffer_depth":0,"labels":{}}]}`,
	`{"kind":"conversation_opened","state":{"name":"activity_scheduled"},"request":{"workflow_id":"wf","activity_type":"a\"b","task_queue":"q","input":{"content_type":"application/json","data":{"x":[1,2]}},"schedule_to_close":"1m30s","start_to_close":"2s"}}`,
	`{"kind":"message_received","state":{"name":"activity_failed","retry_eligible":false},"result":{"status":"failed","error":"boom\n\u0001"},"message":"boom"}`,
	`{"kind":"conversation_closed","result":{"status":"completed","output":{"content_type":"application/octet-stream","data_base64":"/wAB"}}}`,
	`{"kind":"conversation_closed","result":{"status":"completed","output":{"data":"plain <text>"}}}`,
	`{"kind":"message_sent","worker_id":"\ufffd"}`,
	`{"kind":"worker_selected","worker_id":"w1","candidates":[{"id":"w1","in_flight":0,"max_in_flight":1,"buffer_depth":0,"latency_ewma":0.0213,"latency_peak_ewma":1e-7,"error_rate":0.5,"exits":3},{"id":"w2","in_flight":0,"max_in_flight":1,"buffer_depth":0,"latency_ewma":1e+21,"error_rate":-1,"exits":-2},{"id":"w3","in_flight":0,"max_in_flight":1,"buffer_depth":0,"latency_peak_ewma":123456.789}]}`,
}

func TestAppendLineMatchesEncodingJSON(t *testing.T) {
	for _, seed := range encodeSeeds {
		op, err := parseLine([]byte(seed))
		if err != nil {
			t.Fatalf("%s: %v", seed, err)
		}
		checkEncoding(t, op)
	}
	op := engine.Operation{Kind: engine.OpMessageSent, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600)),
		WorkerID: "bad\xffutf8"}
	checkEncoding(t, op)
	for _, f := range []float64{math.NaN(), math.Inf(1)} {
		checkEncoding(t, engine.Operation{Kind: engine.OpWorkerSelected, WorkerID: "w1",
			Candidates: []engine.ConsumerStateView{{ID: "w1", MaxInFlight: 1, LatencyEWMA: f}}})
	}
}

func checkEncoding(t *testing.T, op engine.Operation) {
	t.Helper()
	want, werr := reference(op)
	got, gerr := AppendLine(nil, op)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("errors differ: reference %v, AppendLine %v", werr, gerr)
	}
	if werr == nil && !bytes.Equal(got, want) {
		t.Fatalf("AppendLine differs from encoding/json:\n got %s\nwant %s", got, want)
	}
}

func FuzzAppendLine(f *testing.F) {
	for _, s := range encodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		op, err := parseLine(line)
		if err != nil {
			return
		}
		checkEncoding(t, op)
	})
}
