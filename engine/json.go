package engine

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode/utf8"
)

// The JSON forms below are the journal's (docs/journal.md). Each Unmarshal is
// the exact inverse of its Marshal: bytes, durations and states come back as
// they were, with nil standing for an empty slice.

type payloadJSON struct {
	ContentType string          `json:"content_type,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	DataBase64  string          `json:"data_base64,omitempty"`
}

// MarshalJSON writes {"content_type", "data"}. Data that is compact JSON
// under a JSON content type is embedded as JSON, so journals stay readable;
// other UTF-8 data is a JSON string; anything else goes to "data_base64".
func (p Payload) MarshalJSON() ([]byte, error) {
	out := payloadJSON{ContentType: p.ContentType}
	switch {
	case len(p.Data) == 0:
	case isJSONContentType(p.ContentType) && embeddableJSON(p.Data):
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

// UnmarshalJSON reads what MarshalJSON writes: a JSON string in "data" is the
// bytes of the string, any other JSON value is its own bytes.
func (p *Payload) UnmarshalJSON(b []byte) error {
	var in payloadJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	out := Payload{ContentType: in.ContentType}
	switch {
	case len(in.Data) > 0 && in.DataBase64 != "":
		return errors.New("payload: both data and data_base64 are set")
	case in.DataBase64 != "":
		d, err := base64.StdEncoding.DecodeString(in.DataBase64)
		if err != nil {
			return fmt.Errorf("payload: data_base64: %w", err)
		}
		out.Data = d
	case len(in.Data) > 0 && in.Data[0] == '"':
		var s string
		if err := json.Unmarshal(in.Data, &s); err != nil {
			return fmt.Errorf("payload: data: %w", err)
		}
		if s != "" {
			out.Data = []byte(s)
		}
	case len(in.Data) > 0 && !bytes.Equal(in.Data, []byte("null")):
		out.Data = bytes.Clone(in.Data)
	}
	*p = out
	return nil
}

// ErrPayloadNotJSON is what [Payload.Check] reports for a payload whose
// content type says JSON but whose data is not.
var ErrPayloadNotJSON = errors.New("the content type says JSON but the data is not JSON")

// Check reports whether p is what its content type says, as far as the
// engine can tell: data under application/json or a +json type must be
// JSON (scripts decode it, and the journal embeds it as JSON).
func (p Payload) Check() error {
	if len(p.Data) > 0 && isJSONContentType(p.ContentType) && !json.Valid(p.Data) {
		return fmt.Errorf("%w (content type %s)", ErrPayloadNotJSON, p.ContentType)
	}
	return nil
}

// isJSONContentType reports whether ct is application/json or a +json type.
func isJSONContentType(ct string) bool {
	if ct == "application/json" { // the common case, without parsing
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// embeddableJSON reports whether data can be written as a JSON value and read
// back byte for byte: valid, already compact, and free of the characters the
// encoder would escape. Past json.Valid it is one pass over data, without
// allocating: the journal asks it of every payload it records.
func embeddableJSON(data []byte) bool {
	// A JSON string would read back as its contents, and null as no data.
	if len(data) == 0 || data[0] == '"' || string(data) == "null" || !json.Valid(data) {
		return false
	}
	inString, escaped := false, false
	for i, b := range data {
		switch b {
		case '<', '>', '&': // encoding/json escapes these anywhere
			return false
		case 0xE2: // U+2028 and U+2029, which it escapes too
			if i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xA8 || data[i+2] == 0xA9) {
				return false
			}
		}
		switch {
		case escaped:
			escaped = false
		case inString:
			switch b {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case b == '"':
			inString = true
		case b == ' ' || b == '\t' || b == '\n' || b == '\r': // space json.Compact would remove
			return false
		}
	}
	return true
}

type requestJSON struct {
	WorkflowID      string  `json:"workflow_id,omitempty"`
	ActivityType    string  `json:"activity_type,omitempty"`
	TaskQueue       string  `json:"task_queue,omitempty"`
	Input           Payload `json:"input,omitzero"`
	ScheduleToClose string  `json:"schedule_to_close,omitempty"`
	StartToClose    string  `json:"start_to_close,omitempty"`
	ScheduleToStart string  `json:"schedule_to_start,omitempty"`
}

// MarshalJSON writes the request with durations as Go duration strings ("2s").
func (r ActivityRequest) MarshalJSON() ([]byte, error) {
	return json.Marshal(requestJSON{
		WorkflowID:      r.WorkflowID,
		ActivityType:    r.ActivityType,
		TaskQueue:       r.TaskQueue,
		Input:           r.Input,
		ScheduleToClose: durationText(r.ScheduleToClose),
		StartToClose:    durationText(r.StartToClose),
		ScheduleToStart: durationText(r.ScheduleToStart),
	})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *ActivityRequest) UnmarshalJSON(b []byte) error {
	var in requestJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	s2c, err := parseDurationText("schedule_to_close", in.ScheduleToClose)
	if err != nil {
		return err
	}
	st2c, err := parseDurationText("start_to_close", in.StartToClose)
	if err != nil {
		return err
	}
	s2s, err := parseDurationText("schedule_to_start", in.ScheduleToStart)
	if err != nil {
		return err
	}
	*r = ActivityRequest{
		WorkflowID:      in.WorkflowID,
		ActivityType:    in.ActivityType,
		TaskQueue:       in.TaskQueue,
		Input:           in.Input,
		ScheduleToClose: s2c,
		StartToClose:    st2c,
		ScheduleToStart: s2s,
	}
	return nil
}

func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func parseDurationText(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("request: %s: %w", field, err)
	}
	return d, nil
}

type resultJSON struct {
	Status string  `json:"status"`
	Output Payload `json:"output,omitzero"`
	Error  string  `json:"error,omitempty"`
}

// MarshalJSON writes {"status": "completed", "output": …} or
// {"status": "failed", "error": …}.
func (r ActivityResult) MarshalJSON() ([]byte, error) {
	switch {
	case r.Status == StatusCompleted && r.Error != "":
		return nil, errors.New("result: completed with an error")
	case r.Status == StatusFailed && !r.Output.IsZero():
		return nil, errors.New("result: failed with an output")
	case r.Status == StatusCompleted:
		return json.Marshal(resultJSON{Status: "completed", Output: r.Output})
	case r.Status == StatusFailed:
		return json.Marshal(resultJSON{Status: "failed", Error: r.Error})
	}
	return nil, fmt.Errorf("result: invalid status %d", r.Status)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *ActivityResult) UnmarshalJSON(b []byte) error {
	var in resultJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("result: %w", err)
	}
	switch in.Status {
	case "completed":
		if in.Error != "" {
			return errors.New("result: completed with an error")
		}
		*r = Completed(in.Output)
	case "failed":
		if in.Output.ContentType != "" || in.Output.Data != nil {
			return errors.New("result: failed with an output")
		}
		*r = Failed(in.Error)
	default:
		return fmt.Errorf("result: unknown status %q", in.Status)
	}
	return nil
}

type stateJSON struct {
	Name          StateName `json:"name"`
	RetryEligible *bool     `json:"retry_eligible,omitempty"`
}

// MarshalJSON writes {"name": …}, with "retry_eligible" on activity_failed.
func (s ActivityState) MarshalJSON() ([]byte, error) {
	out := stateJSON{Name: s.Name}
	if s.Name == ActivityFailed {
		out.RetryEligible = &s.RetryEligible
	} else if s.RetryEligible {
		return nil, fmt.Errorf("state %s cannot be retry eligible", s.Name)
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *ActivityState) UnmarshalJSON(b []byte) error {
	var in stateJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if in.Name == 0 {
		return errors.New("state: missing name")
	}
	out := ActivityState{Name: in.Name}
	if in.RetryEligible != nil {
		if in.Name != ActivityFailed && *in.RetryEligible {
			return fmt.Errorf("state: %s cannot be retry eligible", in.Name)
		}
		out.RetryEligible = *in.RetryEligible
	}
	*s = out
	return nil
}

// operationJSON fixes the journal's field order.
type operationJSON struct {
	Seq            uint64              `json:"seq,omitempty"`
	Time           time.Time           `json:"time,omitzero"`
	WorkflowID     string              `json:"workflow_id,omitempty"`
	ConversationID string              `json:"conversation_id,omitempty"`
	Channel        ChannelName         `json:"channel,omitzero"`
	Kind           OpKind              `json:"kind"`
	WorkerID       string              `json:"worker_id,omitempty"`
	State          ActivityState       `json:"state,omitzero"`
	Result         ActivityResult      `json:"result,omitzero"`
	Message        string              `json:"message,omitempty"`
	Attempt        int                 `json:"attempt,omitempty"`
	Waited         string              `json:"waited,omitempty"`
	Router         RouterVersion       `json:"router,omitzero"`
	Candidates     []ConsumerStateView `json:"candidates,omitempty"`
	Excluded       []string            `json:"excluded,omitempty"`
	Request        ActivityRequest     `json:"request,omitzero"`
}

// MarshalJSON writes the journal line of op, fields absent when empty.
func (op Operation) MarshalJSON() ([]byte, error) {
	if op.Kind == 0 {
		return nil, errors.New("operation: missing kind")
	}
	return op.AppendJSON(nil)
}

// UnmarshalJSON reads a journal line; it rejects unknown kinds and states.
func (op *Operation) UnmarshalJSON(b []byte) error {
	var in operationJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("operation: %w", err)
	}
	if in.Kind == 0 {
		return errors.New("operation: missing kind")
	}
	waited, err := time.ParseDuration(cmp.Or(in.Waited, "0"))
	if err != nil {
		return fmt.Errorf("operation: waited: %w", err)
	}
	*op = Operation{
		Seq:            in.Seq,
		Time:           in.Time,
		Kind:           in.Kind,
		WorkflowID:     in.WorkflowID,
		ConversationID: in.ConversationID,
		Channel:        in.Channel,
		WorkerID:       in.WorkerID,
		State:          in.State,
		Result:         in.Result,
		Message:        in.Message,
		Attempt:        in.Attempt,
		Router:         in.Router,
		Candidates:     in.Candidates,
		Excluded:       in.Excluded,
		Request:        in.Request,
		Waited:         waited,
	}
	return nil
}
