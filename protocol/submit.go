package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/strictjson"
)

// Submission is an activity a client asks dispatch to run: the body of
// POST /v1/channels/{ns}/{queue}/dispatch, the body of a NATS request on
// the channel's subject (aion.dispatch.NS.QUEUE, content type
// [ContentTypeRequest] or application/json), and, with its channel, a line
// of `dispatch run --requests`.
//
// Input is any JSON value, sent as application/json, or a string, sent
// as its text (text/plain); ContentType overrides either, and a string
// under a JSON content type must hold JSON text. The timeouts are
// positive Go durations ("2s"); absent means none.
type Submission struct {
	// Channel is "NS/QUEUE" or "aion.dispatch.NS.QUEUE"; where the path or
	// the subject names the channel it may be left out.
	Channel         string          `json:"channel,omitempty"`
	WorkflowID      string          `json:"workflow_id"`
	ActivityType    string          `json:"activity_type"`
	Input           json.RawMessage `json:"input,omitempty"`
	ContentType     string          `json:"content_type,omitempty"`
	StartToClose    string          `json:"start_to_close,omitempty"`
	ScheduleToClose string          `json:"schedule_to_close,omitempty"`
	ScheduleToStart string          `json:"schedule_to_start,omitempty"`
}

// ParseSubmission decodes a submission strictly: malformed JSON, an
// unknown field, data after the object and a key given twice (in the
// submission or in its input) are refused, with errors in the JSON's terms.
// It does not check the fields: see [Submission.Request].
func ParseSubmission(data []byte) (Submission, error) {
	var s Submission
	if err := strictjson.Decode(data, &s); err != nil {
		return Submission{}, err
	}
	return s, nil
}

// Request checks s and returns the activity request it stands for on
// channel ch: workflow_id and activity_type are required, the input must
// agree with its content type, the timeouts must be positive durations,
// and schedule_to_start may not be longer than schedule_to_close.
// s.Channel is not looked at: the caller decides which channel s is for.
//
// A submission it refuses yields a *[RequestError] with every problem
// found, not only the first.
func (s Submission) Request(ch engine.ChannelName) (engine.ActivityRequest, error) {
	var problems []error
	var missing []string
	if s.WorkflowID == "" {
		missing = append(missing, "workflow_id")
	}
	if s.ActivityType == "" {
		missing = append(missing, "activity_type")
	}
	if len(missing) > 0 {
		problems = append(problems, fmt.Errorf("missing %s", strings.Join(missing, " and ")))
	}
	if err := CheckInput(s.Input, s.ContentType); err != nil {
		problems = append(problems, err)
	}
	req := engine.ActivityRequest{WorkflowID: s.WorkflowID, ActivityType: s.ActivityType,
		TaskQueue: ch.TaskQueue(), Input: InputPayload(s.Input, s.ContentType)}
	for _, d := range []struct {
		name string
		v    string
		to   *time.Duration
	}{{"start_to_close", s.StartToClose, &req.StartToClose}, {"schedule_to_close", s.ScheduleToClose, &req.ScheduleToClose},
		{"schedule_to_start", s.ScheduleToStart, &req.ScheduleToStart}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil || v <= 0 {
			problems = append(problems, fmt.Errorf("%s %q: want a positive duration such as 2s", d.name, truncate(d.v)))
			continue
		}
		*d.to = v
	}
	// schedule_to_close bounds the whole activity, its wait in the backlog
	// included.
	if req.ScheduleToStart > 0 && req.ScheduleToClose > 0 && req.ScheduleToStart > req.ScheduleToClose {
		problems = append(problems, fmt.Errorf("schedule_to_start %s is longer than schedule_to_close %s, which bounds the whole activity",
			req.ScheduleToStart, req.ScheduleToClose))
	}
	if len(problems) > 0 {
		return engine.ActivityRequest{}, &RequestError{Problems: problems}
	}
	return req, nil
}

// RequestError is a submission that [Submission.Request] refuses: every
// problem it found, in the order of the fields. Its message is theirs
// joined by "; ", on one line, as a requests line's error and an answer's
// error show it; a scenario reports each problem on its own.
type RequestError struct {
	Problems []error
}

func (e *RequestError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (e *RequestError) Unwrap() []error { return e.Problems }

// CheckInput refuses an input whose content type says JSON but whose data
// would not be JSON: a string input is sent as its text, so "hi" with
// application/json would reach the worker, and scripts, as broken JSON.
func CheckInput(raw json.RawMessage, contentType string) error {
	if err := InputPayload(raw, contentType).Check(); err != nil {
		return fmt.Errorf("input: %w; give the JSON value itself, not a string, or another content_type", err)
	}
	return nil
}

// InputPayload turns a JSON input into a payload: a JSON string is its
// text (text/plain unless contentType says otherwise), any other value its
// JSON, compacted (application/json unless told).
func InputPayload(raw json.RawMessage, contentType string) engine.Payload {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return engine.Payload{ContentType: contentType}
	}
	var s string
	if raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		if contentType == "" {
			contentType = "text/plain"
		}
		return engine.Payload{ContentType: contentType, Data: []byte(s)}
	}
	if contentType == "" {
		contentType = "application/json"
	}
	var compact bytes.Buffer
	if json.Compact(&compact, raw) == nil {
		raw = compact.Bytes()
	}
	return engine.Payload{ContentType: contentType, Data: raw}
}

// HeaderDispatchTimeout is the header (HTTP and NATS) with which a client
// says how long it will wait for the answer, as a Go duration ("30s"): the
// node gives the dispatch no longer, so that an activity the client gave
// up on does not go on holding a worker. `dispatch submit` sends its
// --timeout in it.
const HeaderDispatchTimeout = "Dispatch-Timeout"

// The statuses of an [Answer].
const (
	StatusCompleted = "completed"
	StatusFailed    = "failed"
)

// The kinds of a failed [Answer]: why the activity did not complete.
const (
	// KindActivityFailed: the worker ran the activity and answered Failed.
	KindActivityFailed = "activity_failed"
	// KindNoWorkers: no worker could take it (none serves the channel,
	// every one failed it, the script chose none, or the channel fails at
	// once when full).
	KindNoWorkers = "no_workers"
	// KindBacklogFull: the channel's backlog held its max_backlog already.
	KindBacklogFull = "backlog_full"
	// KindTimeout: a timeout of the request (start-to-close,
	// schedule-to-start, schedule-to-close) or of the node fired.
	KindTimeout = "timeout"
	// KindUnknownChannel: no channel of that name is configured.
	KindUnknownChannel = "unknown_channel"
	// KindBadRequest: the submission could not be read or is invalid.
	KindBadRequest = "bad_request"
	// KindDraining: the node is shutting down and takes no new dispatch,
	// or gave up on this one when its drain timeout ran out.
	KindDraining = "draining"
	// KindRoutingFailed: the channel's routing script failed (an error,
	// a timeout, a decision that names no candidate).
	KindRoutingFailed = "routing_failed"
	// KindInternal: dispatch itself failed (the journal could not be
	// written, say); the message says what.
	KindInternal = "internal"
)

// KindOf is the kind of an engine error that ended a dispatch: one of the
// Kind constants, [KindInternal] for an error the engine does not name.
// A front door adds its own causes before it asks (a node shutting down,
// its own timeouts).
func KindOf(err error) string {
	var te *engine.TimeoutError
	switch {
	case errors.Is(err, engine.ErrActivityFailed):
		return KindActivityFailed
	case errors.Is(err, engine.ErrInvalidChannel), errors.Is(err, engine.ErrInvalidRequest):
		return KindBadRequest
	case errors.Is(err, engine.ErrUnknownChannel):
		return KindUnknownChannel
	case errors.Is(err, engine.ErrBacklogFull):
		return KindBacklogFull
	case errors.As(err, &te), errors.Is(err, engine.ErrScheduleToStartTimeout),
		errors.Is(err, engine.ErrStartToCloseTimeout), errors.Is(err, engine.ErrScheduleToCloseTimeout):
		return KindTimeout
	case errors.Is(err, engine.ErrNoWorkers):
		return KindNoWorkers
	case errors.Is(err, engine.ErrRouting):
		return KindRoutingFailed
	}
	return KindInternal
}

// Answer is dispatch's reply to a [Submission]: over HTTP the response
// body, over NATS the reply (content type [ContentTypeResponse]).
//
//	{"status": "completed", "output": {"upper": "HI"}, "content_type": "application/json",
//	 "worker_id": "w1", "conversation_id": "c-42", "attempts": 1}
//	{"status": "failed", "kind": "no_workers", "error": "…", "conversation_id": "c-43"}
//
// Output is the activity's output as the input of a submission is given:
// JSON under a JSON content type, a string for UTF-8 text under another;
// other data (binary, or text that a JSON content type mislabels) is
// base64 in OutputBase64.
type Answer struct {
	Status         string          `json:"status"`
	Kind           string          `json:"kind,omitempty"`
	Error          string          `json:"error,omitempty"`
	Output         json.RawMessage `json:"output,omitempty"`
	OutputBase64   string          `json:"output_base64,omitempty"`
	ContentType    string          `json:"content_type,omitempty"`
	WorkerID       string          `json:"worker_id,omitempty"`
	ConversationID string          `json:"conversation_id,omitempty"`
	Attempts       int             `json:"attempts,omitempty"`
}

// SetOutput puts p in a's output fields.
func (a *Answer) SetOutput(p engine.Payload) {
	a.ContentType = p.ContentType
	a.Output, a.OutputBase64 = nil, ""
	switch {
	case len(p.Data) == 0:
	case isJSONType(p.ContentType) && json.Valid(p.Data):
		a.Output = json.RawMessage(p.Data)
	case !isJSONType(p.ContentType) && utf8.Valid(p.Data):
		a.Output = jsonString(string(p.Data))
	default:
		a.OutputBase64 = base64.StdEncoding.EncodeToString(p.Data)
	}
}

// Payload returns the output a carries.
func (a *Answer) Payload() (engine.Payload, error) {
	out := engine.Payload{ContentType: a.ContentType}
	switch {
	case a.OutputBase64 != "":
		d, err := base64.StdEncoding.DecodeString(a.OutputBase64)
		if err != nil {
			return engine.Payload{}, fmt.Errorf("output_base64: %w", err)
		}
		out.Data = d
	case len(a.Output) > 0 && isJSONType(a.ContentType):
		out.Data = bytes.Clone(a.Output)
	case len(a.Output) > 0:
		var s string
		if err := json.Unmarshal(a.Output, &s); err != nil {
			return engine.Payload{}, fmt.Errorf("output: want a string under content type %q", a.ContentType)
		}
		out.Data = []byte(s)
	}
	return out, nil
}

// isJSONType reports whether a media type is JSON: application/json or a
// +json suffix.
func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// jsonString is s as a JSON string, with <, > and & left as they are.
func jsonString(s string) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}
