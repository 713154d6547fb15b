package journal

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
)

// parseLine reads one journal line, the exact inverse of [AppendLine]:
// bytes, durations and states come back as they were, with nil standing
// for an empty slice. It rejects unknown kinds, states and statuses, and
// the values AppendLine refuses to write.
func parseLine(b []byte) (engine.Operation, error) {
	if !json.Valid(b) {
		// The syntax error, as it was when the line was decoded into an
		// engine.Operation (a json.Unmarshaler): without "operation: ".
		var v struct{}
		return engine.Operation{}, json.Unmarshal(b, &v)
	}
	var in operationJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return engine.Operation{}, fmt.Errorf("operation: %w", err)
	}
	if in.Kind == 0 {
		return engine.Operation{}, errors.New("operation: missing kind")
	}
	waited, err := time.ParseDuration(cmp.Or(in.Waited, "0"))
	if err != nil {
		return engine.Operation{}, fmt.Errorf("operation: waited: %w", err)
	}
	return engine.Operation{
		Seq:            in.Seq,
		Time:           in.Time,
		Kind:           in.Kind,
		WorkflowID:     in.WorkflowID,
		ConversationID: in.ConversationID,
		Channel:        in.Channel,
		WorkerID:       in.WorkerID,
		State:          engine.ActivityState(in.State),
		Result:         engine.ActivityResult(in.Result),
		Message:        in.Message,
		Attempt:        in.Attempt,
		Router:         in.Router,
		Candidates:     in.Candidates,
		Excluded:       in.Excluded,
		Request:        engine.ActivityRequest(in.Request),
		Waited:         waited,
	}, nil
}

// operationJSON is a line's members. The types below read the nested
// objects, each with its own errors ("state: …", "result: …").
type operationJSON struct {
	Seq            uint64                     `json:"seq,omitempty"`
	Time           time.Time                  `json:"time,omitzero"`
	WorkflowID     string                     `json:"workflow_id,omitempty"`
	ConversationID string                     `json:"conversation_id,omitempty"`
	Channel        engine.ChannelName         `json:"channel,omitzero"`
	Kind           engine.OpKind              `json:"kind"`
	WorkerID       string                     `json:"worker_id,omitempty"`
	State          activityState              `json:"state,omitzero"`
	Result         activityResult             `json:"result,omitzero"`
	Message        string                     `json:"message,omitempty"`
	Attempt        int                        `json:"attempt,omitempty"`
	Waited         string                     `json:"waited,omitempty"`
	Router         engine.RouterVersion       `json:"router,omitzero"`
	Candidates     []engine.ConsumerStateView `json:"candidates,omitempty"`
	Excluded       []string                   `json:"excluded,omitempty"`
	Request        activityRequest            `json:"request,omitzero"`
}

// payload reads a payload: {"content_type", "data"} or
// {"content_type", "data_base64"}.
type payload engine.Payload

type payloadJSON struct {
	ContentType string          `json:"content_type,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	DataBase64  string          `json:"data_base64,omitempty"`
}

// UnmarshalJSON reads what AppendLine writes: a JSON string in "data" is the
// bytes of the string, any other JSON value is its own bytes.
func (p *payload) UnmarshalJSON(b []byte) error {
	var in payloadJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	out := payload{ContentType: in.ContentType}
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

// activityRequest reads a request, with durations as Go duration strings.
type activityRequest engine.ActivityRequest

type requestJSON struct {
	WorkflowID      string  `json:"workflow_id,omitempty"`
	ActivityType    string  `json:"activity_type,omitempty"`
	TaskQueue       string  `json:"task_queue,omitempty"`
	Input           payload `json:"input,omitzero"`
	ScheduleToClose string  `json:"schedule_to_close,omitempty"`
	StartToClose    string  `json:"start_to_close,omitempty"`
	ScheduleToStart string  `json:"schedule_to_start,omitempty"`
}

// UnmarshalJSON reads what AppendLine writes.
func (r *activityRequest) UnmarshalJSON(b []byte) error {
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
	*r = activityRequest{
		WorkflowID:      in.WorkflowID,
		ActivityType:    in.ActivityType,
		TaskQueue:       in.TaskQueue,
		Input:           engine.Payload(in.Input),
		ScheduleToClose: s2c,
		StartToClose:    st2c,
		ScheduleToStart: s2s,
	}
	return nil
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

// activityResult reads {"status": "completed", "output": …} or
// {"status": "failed", "error": …}.
type activityResult engine.ActivityResult

type resultJSON struct {
	Status string  `json:"status"`
	Output payload `json:"output,omitzero"`
	Error  string  `json:"error,omitempty"`
}

// UnmarshalJSON reads what AppendLine writes.
func (r *activityResult) UnmarshalJSON(b []byte) error {
	var in resultJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("result: %w", err)
	}
	switch in.Status {
	case "completed":
		if in.Error != "" {
			return errors.New("result: completed with an error")
		}
		*r = activityResult(engine.Completed(engine.Payload(in.Output)))
	case "failed":
		if in.Output.ContentType != "" || in.Output.Data != nil {
			return errors.New("result: failed with an output")
		}
		*r = activityResult(engine.Failed(in.Error))
	default:
		return fmt.Errorf("result: unknown status %q", in.Status)
	}
	return nil
}

// activityState reads {"name": …}, with "retry_eligible" on activity_failed.
type activityState engine.ActivityState

type stateJSON struct {
	Name          engine.StateName `json:"name"`
	RetryEligible *bool            `json:"retry_eligible,omitempty"`
}

// UnmarshalJSON reads what AppendLine writes.
func (s *activityState) UnmarshalJSON(b []byte) error {
	var in stateJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if in.Name == 0 {
		return errors.New("state: missing name")
	}
	out := activityState{Name: in.Name}
	if in.RetryEligible != nil {
		if in.Name != engine.ActivityFailed && *in.RetryEligible {
			return fmt.Errorf("state: %s cannot be retry eligible", in.Name)
		}
		out.RetryEligible = *in.RetryEligible
	}
	*s = out
	return nil
}
