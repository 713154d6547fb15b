package engine

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// reference encodes op the slow way, with encoding/json over the tagged
// struct: AppendJSON must write the same bytes.
func reference(op Operation) ([]byte, error) {
	return json.Marshal(operationJSON{
		Seq: op.Seq, Time: op.Time.UTC(), WorkflowID: op.WorkflowID, ConversationID: op.ConversationID,
		Channel: op.Channel, Kind: op.Kind, WorkerID: op.WorkerID, State: op.State, Result: op.Result,
		Message: op.Message, Attempt: op.Attempt, Router: op.Router, Candidates: op.Candidates,
		Excluded: op.Excluded, Request: op.Request,
	})
}

var encodeSeeds = []string{
	`{"seq":7,"time":"2026-11-25T20:00:00.5Z","workflow_id":"wf<1>","conversation_id":"c&1","channel":"aion.dispatch.prod.email","kind":"worker_selected","worker_id":"w\u2028","state":{"name":"activity_started"},"attempt":2,"router":{"lang":"lua","hash":"sha256:ab","source":"x.lua"},"candidates":[{"id":"w1","in_flight":1,"max_in_flight":4,"buffer_depth":2,"tags":["eu","\t"]},{"id":"w2","in_flight":0,"max_in_flight":1,"buffer_depth":0}],"excluded":["w0"]}`,
	`{"kind":"conversation_opened","state":{"name":"activity_scheduled"},"request":{"workflow_id":"wf","activity_type":"a\"b","task_queue":"q","input":{"content_type":"application/json","data":{"x":[1,2]}},"schedule_to_close":"1m30s","start_to_close":"2s"}}`,
	`{"kind":"message_received","state":{"name":"activity_failed","retry_eligible":false},"result":{"status":"failed","error":"boom\n\u0001"},"message":"boom"}`,
	`{"kind":"conversation_closed","result":{"status":"completed","output":{"content_type":"application/octet-stream","data_base64":"/wAB"}}}`,
	`{"kind":"conversation_closed","result":{"status":"completed","output":{"data":"plain <text>"}}}`,
	`{"kind":"message_sent","worker_id":"\ufffd"}`,
}

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, seed := range encodeSeeds {
		var op Operation
		if err := json.Unmarshal([]byte(seed), &op); err != nil {
			t.Fatalf("%s: %v", seed, err)
		}
		checkEncoding(t, op)
	}
	op := Operation{Kind: OpMessageSent, Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600)),
		WorkerID: "bad\xffutf8"}
	checkEncoding(t, op)
}

func checkEncoding(t *testing.T, op Operation) {
	t.Helper()
	want, werr := reference(op)
	got, gerr := op.AppendJSON(nil)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("errors differ: reference %v, AppendJSON %v", werr, gerr)
	}
	if werr == nil && !bytes.Equal(got, want) {
		t.Fatalf("AppendJSON differs from encoding/json:\n got %s\nwant %s", got, want)
	}
}

func FuzzAppendJSON(f *testing.F) {
	for _, s := range encodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var op Operation
		if json.Unmarshal(line, &op) != nil {
			return
		}
		checkEncoding(t, op)
	})
}
