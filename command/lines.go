package command

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// LineVersion is the version of the JSON-lines format a [Server] speaks,
// the "v" of every line it writes (docs/workers.md).
const LineVersion = 1

// The "type" of a line the host writes.
const (
	lineActivity = "activity"
	lineCancel   = "cancel"
)

// requestLine is the line the host writes for an activity.
type requestLine struct {
	V              int             `json:"v"`
	Type           string          `json:"type"`
	ID             string          `json:"id"`
	WorkflowID     string          `json:"workflow_id"`
	ActivityType   string          `json:"activity_type"`
	TaskQueue      string          `json:"task_queue"`
	ContentType    string          `json:"content_type"`
	Input          json.RawMessage `json:"input,omitempty"`
	InputBase64    *string         `json:"input_base64,omitempty"`
	StartToCloseMS int64           `json:"start_to_close_ms,omitempty"`
	Deadline       string          `json:"deadline,omitempty"`
}

// cancelLine is the line the host writes when an activity's context ends
// after its request line was written.
type cancelLine struct {
	V    int    `json:"v"`
	Type string `json:"type"`
	ID   string `json:"id"`
}

// isJSON reports whether a content type is JSON: application/json, or any
// type with a +json suffix, parameters aside.
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// encodeRequest returns the request line of an activity, newline included.
// deadline is zero when the activity has none.
func encodeRequest(id string, req engine.ActivityRequest, deadline time.Time) ([]byte, error) {
	l := requestLine{
		V: LineVersion, Type: lineActivity, ID: id,
		WorkflowID: req.WorkflowID, ActivityType: req.ActivityType, TaskQueue: req.TaskQueue,
		ContentType:    req.Input.ContentType,
		StartToCloseMS: req.StartToClose.Milliseconds(),
	}
	if !deadline.IsZero() {
		l.Deadline = deadline.UTC().Format(time.RFC3339Nano)
	}
	if data := req.Input.Data; len(data) > 0 {
		var compact bytes.Buffer
		if isJSON(req.Input.ContentType) && json.Compact(&compact, data) == nil {
			l.Input = compact.Bytes()
		} else {
			s := base64.StdEncoding.EncodeToString(data)
			l.InputBase64 = &s
		}
	}
	return marshalLine(l)
}

// encodeCancel returns the cancel line of an activity, newline included.
func encodeCancel(id string) []byte {
	b, _ := marshalLine(cancelLine{V: LineVersion, Type: lineCancel, ID: id}) // cannot fail
	return b
}

func marshalLine(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // one line: Encode adds the newline
		return nil, err
	}
	return b.Bytes(), nil
}

// responseLine is the line a program writes for an activity.
type responseLine struct {
	V            *int            `json:"v"`
	ID           json.RawMessage `json:"id"`
	Status       string          `json:"status"`
	ContentType  *string         `json:"content_type"`
	Output       json.RawMessage `json:"output"`
	OutputBase64 *string         `json:"output_base64"`
	Error        *string         `json:"error"`
}

// errMalformed is wrapped by every error of parseResponse.
var errMalformed = errors.New("malformed response line")

// parseResponse reads one response line (without its newline). On error it
// still returns the line's id when it can be read, so that the activity the
// line was meant for can fail at once; the error wraps errMalformed.
//
// The rules (docs/workers.md): one JSON object; "id" a non-empty string;
// "status" "completed" or "failed"; a completed line has at most one of
// "output" (any JSON value; null or absent is no output) and
// "output_base64", and its "content_type" defaults to application/json
// with "output" and application/octet-stream with "output_base64"; a
// failed line has an "error" string and no output; "v", if present, is 1;
// no other field.
func parseResponse(line []byte) (id string, res engine.ActivityResult, err error) {
	var l responseLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return lenientID(line), res, fmt.Errorf("%w: %v", errMalformed, err)
	}
	idErr := json.Unmarshal(l.ID, &id)
	if _, err := dec.Token(); err != io.EOF {
		return id, res, fmt.Errorf("%w: data after the object", errMalformed)
	}
	if idErr != nil || id == "" {
		return "", res, fmt.Errorf("%w: \"id\" is not a non-empty string", errMalformed)
	}
	bad := func(format string, args ...any) (string, engine.ActivityResult, error) {
		return id, engine.ActivityResult{}, fmt.Errorf("%w: "+format, append([]any{errMalformed}, args...)...)
	}
	if l.V != nil && *l.V != LineVersion {
		return bad("version %d, want %d", *l.V, LineVersion)
	}
	output := len(l.Output) > 0 && string(l.Output) != "null"
	switch l.Status {
	case "completed":
		if l.Error != nil {
			return bad("a completed response has an \"error\"")
		}
		if output && l.OutputBase64 != nil {
			return bad("both \"output\" and \"output_base64\"")
		}
		var p engine.Payload
		switch {
		case output:
			var b bytes.Buffer
			if err := json.Compact(&b, l.Output); err != nil {
				return bad("\"output\": %v", err)
			}
			p = engine.Payload{ContentType: "application/json", Data: b.Bytes()}
		case l.OutputBase64 != nil:
			data, err := base64.StdEncoding.DecodeString(*l.OutputBase64)
			if err != nil {
				return bad("\"output_base64\": %v", err)
			}
			p = engine.Payload{ContentType: "application/octet-stream", Data: data}
		}
		if l.ContentType != nil {
			p.ContentType = *l.ContentType
		}
		return id, engine.Completed(p), nil
	case "failed":
		if output || l.OutputBase64 != nil || l.ContentType != nil {
			return bad("a failed response has an output")
		}
		if l.Error == nil {
			return bad("a failed response has no \"error\"")
		}
		return id, engine.Failed(*l.Error), nil
	case "":
		return bad("no \"status\"")
	default:
		return bad("status %q, want \"completed\" or \"failed\"", l.Status)
	}
}

// lenientID returns the "id" string of a line that is a JSON object with
// one, however wrong the rest, or "".
func lenientID(line []byte) string {
	var l struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(line, &l) // sets the id, if a string, whatever else fails
	return l.ID
}
