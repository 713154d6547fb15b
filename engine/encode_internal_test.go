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

// embeddableReference is embeddableJSON's definition, written the slow way:
// valid, free of what encoding/json escapes, and equal to its compact form.
func embeddableReference(data []byte) bool {
	if !json.Valid(data) || bytes.ContainsAny(data, "<>&\u2028\u2029") {
		return false
	}
	if data[0] == '"' || bytes.Equal(data, []byte("null")) {
		return false
	}
	var c bytes.Buffer
	if err := json.Compact(&c, data); err != nil {
		return false
	}
	return bytes.Equal(c.Bytes(), data)
}

var embeddableSeeds = []string{
	``, `null`, `"s"`, `{}`, `[]`, `1`, `true`, `{"a":1}`, `{"a": 1}`, ` {"a":1}`, "{\"a\":1}\n",
	`{"a":"x y"}`, `{"a":"<"}`, `{"a":"\u003c"}`, `{"a":"q\"b c"}`, `{"a":"\\"," ":2}`, `{"a":"\\" }`,
	"{\"a\":\"\u2028\"}", "{\"a\":\"\u2027\"}", "{\"a\":\"\xe2\x80\"}", `{"a":[1,2,{"b":null}]}`,
	`{"a":1`, `{"a":01}`, "{\"a\":\"\xff\"}", `[1,	2]`, `"a" `,
}

func TestEmbeddableJSON(t *testing.T) {
	for _, s := range embeddableSeeds {
		if got, want := embeddableJSON([]byte(s)), embeddableReference([]byte(s)); got != want {
			t.Errorf("embeddableJSON(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzEmbeddableJSON(f *testing.F) {
	for _, s := range embeddableSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := embeddableJSON(data), embeddableReference(data); got != want {
			t.Fatalf("embeddableJSON(%q) = %v, want %v", data, got, want)
		}
	})
}
