//go:build linux

package command

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

func TestParseResponse(t *testing.T) {
	tests := []struct {
		line string
		id   string
		res  engine.ActivityResult
		err  string
	}{
		{line: `{"id":"1","status":"completed","output":{"a":[1, 2]}}`, id: "1",
			res: engine.Completed(engine.Payload{ContentType: "application/json", Data: []byte(`{"a":[1,2]}`)})},
		{line: `{"v":1,"id":"1","status":"completed","output_base64":"aGk=","content_type":"text/plain"}`, id: "1",
			res: engine.Completed(engine.Payload{ContentType: "text/plain", Data: []byte("hi")})},
		{line: `{"id":"1","status":"completed","output_base64":"aGk="}`, id: "1",
			res: engine.Completed(engine.Payload{ContentType: "application/octet-stream", Data: []byte("hi")})},
		{line: `{"id":"1","status":"completed"}`, id: "1", res: engine.Completed(engine.Payload{})},
		{line: `{"id":"1","status":"completed","output":null,"error":null}`, id: "1", res: engine.Completed(engine.Payload{})},
		{line: `{"id":"1","status":"failed","error":"no"}`, id: "1", res: engine.Failed("no")},
		{line: `{"id":"1","status":"failed"}`, id: "1", err: `a failed response has no "error"`},
		{line: `{"id":"1","status":"failed","error":"x","output":1}`, id: "1", err: "a failed response has an output"},
		{line: `{"id":"1","status":"completed","error":"x"}`, id: "1", err: `a completed response has an "error"`},
		{line: `{"id":"1","status":"completed","output":1,"output_base64":""}`, id: "1", err: `both "output" and "output_base64"`},
		{line: `{"id":"1","status":"completed","output_base64":"!"}`, id: "1", err: `"output_base64": illegal base64`},
		{line: `{"id":"1","status":"completed","v":2}`, id: "1", err: "version 2, want 1"},
		{line: `{"id":"1"}`, id: "1", err: `no "status"`},
		{line: `{"id":"1","status":"ok"}`, id: "1", err: `status "ok"`},
		{line: `{"id":"1","status":"completed","more":1}`, id: "1", err: `unknown field "more"`},
		{line: `{"id":"1","status":1}`, id: "1", err: "cannot unmarshal number"},
		{line: `{"id":"","status":"completed"}`, err: `"id" is not a non-empty string`},
		{line: `{"status":"completed"}`, err: `"id" is not a non-empty string`},
		{line: `{"id":1,"status":"completed"}`, err: `"id" is not a non-empty string`},
		{line: `{"id":"1","status":"completed"}x`, id: "1", err: "data after the object"},
		{line: `null`, err: `"id" is not a non-empty string`},
		{line: ``, err: "EOF"},
		{line: `{"id":"1"`, err: "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			id, res, err := parseResponse([]byte(tt.line))
			if id != tt.id {
				t.Errorf("id %q, want %q", id, tt.id)
			}
			if tt.err != "" {
				if err == nil || !errors.Is(err, errMalformed) || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tt.res.Status || res.Error != tt.res.Error || res.Output.ContentType != tt.res.Output.ContentType ||
				string(res.Output.Data) != string(tt.res.Output.Data) {
				t.Errorf("%+v, want %+v", res, tt.res)
			}
		})
	}
}

func TestEncodeRequest(t *testing.T) {
	line, err := encodeRequest("7", engine.ActivityRequest{WorkflowID: "wf", ActivityType: "a", TaskQueue: "q",
		Input: engine.Payload{ContentType: "application/vnd.x+json", Data: []byte("[1,\n 2]")}}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"type":"activity","id":"7","workflow_id":"wf","activity_type":"a","task_queue":"q","content_type":"application/vnd.x+json","input":[1,2]}` + "\n"
	if string(line) != want {
		t.Errorf("%s\nwant\n%s", line, want)
	}
	line, _ = encodeRequest("8", engine.ActivityRequest{Input: engine.Payload{ContentType: "image/png", Data: []byte{0, 1, '\n'}}}, time.Time{})
	want = `{"v":1,"type":"activity","id":"8","workflow_id":"","activity_type":"","task_queue":"","content_type":"image/png","input_base64":"AAEK"}` + "\n"
	if string(line) != want {
		t.Errorf("%s\nwant\n%s", line, want)
	}
	if got, want := string(encodeCancel("8")), `{"v":1,"type":"cancel","id":"8"}`+"\n"; got != want {
		t.Errorf("%s, want %s", got, want)
	}
}

// FuzzParseResponse: any line is parsed without a panic; an accepted one
// has an id and a valid result, and a JSON output that is valid JSON.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		`{"id":"1","status":"completed","output":{"a":1}}`,
		`{"id":"1","status":"completed","output_base64":"aGk=","content_type":"text/plain"}`,
		`{"id":"1","status":"failed","error":"no"}`,
		`{"v":1,"id":"x","status":"completed","output":null}`,
		`{"id":"1","status":"completed"} {}`,
		`not json`, `[]`, `{"id":1}`, "{\"id\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		id, res, err := parseResponse(line)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			return
		}
		if id == "" || !json.Valid(line) {
			t.Fatal("accepted without an id, or not JSON")
		}
		switch res.Status {
		case engine.StatusCompleted:
			if res.Error != "" {
				t.Fatal("completed with an error")
			}
		case engine.StatusFailed:
			if !res.Output.IsZero() {
				t.Fatal("failed with an output")
			}
		default:
			t.Fatalf("status %v", res.Status)
		}
	})
}
