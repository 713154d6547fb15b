package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/jsonform"
)

// Connection identifies a worker's NATS connection as the server's
// disconnect advisory names it: the id of the server it is connected to
// (nats.Conn.ConnectedServerId) and its client id there
// (nats.Conn.GetClientID).
type Connection struct {
	ServerID string `json:"server_id"`
	ClientID uint64 `json:"client_id"`
}

func (c *Connection) check(field string) error {
	switch {
	case c == nil:
		return missing(field)
	case c.ServerID == "":
		return missing(field + ".server_id")
	case c.ClientID == 0:
		return missing(field + ".client_id")
	}
	return nil
}

// State is a worker's load as it reports it. Seq increases by one with
// every change, so that a reader keeps the newest of reports that arrive
// out of order (a status and an ack travel on different subjects).
type State struct {
	Seq         uint64 `json:"seq"`
	InFlight    int    `json:"in_flight"`    // activities accepted and not yet answered
	BufferDepth int    `json:"buffer_depth"` // of those, the ones deferred: accepted, not yet started
}

func (s *State) check(field string) error {
	switch {
	case s == nil:
		return missing(field)
	case s.InFlight < 0:
		return invalid(field+".in_flight", "%d is negative", s.InFlight)
	case s.BufferDepth < 0 || s.BufferDepth > s.InFlight:
		return invalid(field+".buffer_depth", "%d is not within 0..in_flight (%d)", s.BufferDepth, s.InFlight)
	}
	return nil
}

// Registration announces a worker to every dispatch node, on
// [SubjectRegister]: when it starts, after it reconnects, and when a node
// says hello. A node refuses the registration of an id that a live worker
// of another instance holds.
type Registration struct {
	Version  int    `json:"version"`
	WorkerID string `json:"worker_id"` // a subject token
	// Instance tells a worker that registers again (after a reconnect)
	// from another process that takes the same id: random per process.
	Instance    string   `json:"instance"`
	Channels    []string `json:"channels"` // "namespace/task_queue"
	MaxInFlight int      `json:"max_in_flight"`
	Tags        []string `json:"tags,omitempty"`
	// Labels are the worker's key-value labels, as engine.CheckLabels
	// allows them; a registration with others is refused.
	Labels     map[string]string `json:"labels,omitempty"`
	Connection *Connection       `json:"connection"`
	State      *State            `json:"state"`
	// Heartbeat is how often the worker publishes its status even when
	// nothing changed (a Go duration, "5s"); empty: only on changes.
	Heartbeat string `json:"heartbeat,omitempty"`
}

// ContentType implements [Message].
func (Registration) ContentType() string { return ContentTypeRegistration }
func (Registration) name() string        { return "registration" }
func (r Registration) check() error {
	if err := checkVersion(r.Version); err != nil {
		return err
	}
	if err := checkID("worker_id", r.WorkerID); err != nil {
		return err
	}
	if err := checkID("instance", r.Instance); err != nil {
		return err
	}
	if len(r.Channels) == 0 {
		return missing("channels")
	}
	for _, c := range r.Channels {
		if _, err := ParseChannel(c); err != nil {
			return invalid("channels", "%v", err)
		}
	}
	if r.MaxInFlight == 0 {
		return missing("max_in_flight")
	}
	if r.MaxInFlight < 0 {
		return invalid("max_in_flight", "%d is negative", r.MaxInFlight)
	}
	if err := engine.CheckLabels(r.Labels); err != nil {
		return invalid("labels", "%v", err)
	}
	if err := r.Connection.check("connection"); err != nil {
		return err
	}
	if err := r.State.check("state"); err != nil {
		return err
	}
	if r.Heartbeat != "" {
		if d, err := time.ParseDuration(r.Heartbeat); err != nil || d <= 0 {
			return invalid("heartbeat", "%q is not a positive duration", truncate(r.Heartbeat))
		}
	}
	return nil
}

// HeartbeatInterval returns Heartbeat as a duration, 0 when empty.
func (r Registration) HeartbeatInterval() time.Duration {
	d, _ := time.ParseDuration(r.Heartbeat) // checked when decoded
	return d
}

// ParseChannel reads "namespace/task_queue" as a channel name.
func ParseChannel(s string) (engine.ChannelName, error) {
	ns, q, ok := bytes.Cut([]byte(s), []byte("/"))
	if !ok {
		return engine.ChannelName{}, fmt.Errorf("channel %q is not namespace/task_queue", truncate(s))
	}
	return engine.DispatchChannel(string(ns), string(q))
}

// Status is a worker's load, published on [SubjectStatus] when it
// changes, and every heartbeat interval when the worker has one.
type Status struct {
	Version  int    `json:"version"`
	WorkerID string `json:"worker_id"`
	Instance string `json:"instance"`
	State    *State `json:"state"`
}

// ContentType implements [Message].
func (Status) ContentType() string { return ContentTypeStatus }
func (Status) name() string        { return "status" }
func (s Status) check() error {
	if err := checkVersion(s.Version); err != nil {
		return err
	}
	if err := checkID("worker_id", s.WorkerID); err != nil {
		return err
	}
	if err := checkID("instance", s.Instance); err != nil {
		return err
	}
	return s.State.check("state")
}

// Deregistration says a worker leaves, on [SubjectDeregister]: it takes
// no new work. It is not an exit: what it was sent it still answers.
type Deregistration struct {
	Version  int    `json:"version"`
	WorkerID string `json:"worker_id"`
	Instance string `json:"instance"`
	Reason   string `json:"reason,omitempty"`
}

// ContentType implements [Message].
func (Deregistration) ContentType() string { return ContentTypeDeregistration }
func (Deregistration) name() string        { return "deregistration" }
func (d Deregistration) check() error {
	if err := checkVersion(d.Version); err != nil {
		return err
	}
	if err := checkID("worker_id", d.WorkerID); err != nil {
		return err
	}
	return checkID("instance", d.Instance)
}

// Hello is what a dispatch node publishes on [SubjectHello] when it
// starts: every worker registers again, so that the node learns of the
// workers that registered before it.
type Hello struct {
	Version int    `json:"version"`
	NodeID  string `json:"node_id"`
}

// ContentType implements [Message].
func (Hello) ContentType() string { return ContentTypeHello }
func (Hello) name() string        { return "hello" }
func (h Hello) check() error {
	if err := checkVersion(h.Version); err != nil {
		return err
	}
	return checkID("node_id", h.NodeID)
}

// Request asks a worker to run an activity, on [RequestSubject]; the NATS
// reply subject is the node's inbox ([InboxSubject]), where the worker
// sends its [Ack] and then its [Response].
type Request struct {
	Version  int    `json:"version"`
	WorkerID string `json:"worker_id"`
	// Instance is the instance of the registered worker the request is
	// for: a process that took the same id and was refused as a
	// duplicate ignores it.
	Instance       string    `json:"instance"`
	ConversationID string    `json:"conversation_id"`
	Attempt        int       `json:"attempt"`
	Activity       *Activity `json:"activity"`
}

// ContentType implements [Message].
func (Request) ContentType() string { return ContentTypeRequest }
func (Request) name() string        { return "request" }
func (r Request) check() error {
	if err := checkVersion(r.Version); err != nil {
		return err
	}
	if err := checkID("worker_id", r.WorkerID); err != nil {
		return err
	}
	if err := checkID("instance", r.Instance); err != nil {
		return err
	}
	if err := checkConversation(r.ConversationID, r.Attempt); err != nil {
		return err
	}
	if r.Activity == nil {
		return missing("activity")
	}
	_, err := r.Activity.Engine()
	return err
}

func checkConversation(id string, attempt int) error {
	if err := checkText("conversation_id", id); err != nil {
		return err
	}
	if attempt == 0 {
		return missing("attempt")
	}
	if attempt < 0 {
		return invalid("attempt", "%d is negative", attempt)
	}
	return nil
}

// AckStatus is what a worker does with a request.
type AckStatus string

// The statuses of an [Ack].
const (
	// AckAccepted: the worker started the activity.
	AckAccepted AckStatus = "accepted"
	// AckDeferred: the worker took the activity and will start it when
	// one of its executors is free (it counts in its buffer depth).
	AckDeferred AckStatus = "deferred"
	// AckRejected: the worker did not take the activity (it is full, or
	// draining); dispatch routes it again, and does not count an exit.
	AckRejected AckStatus = "rejected"
)

// Ack is a worker's first answer to a request, sent to the request's
// reply subject at once.
type Ack struct {
	Version        int       `json:"version"`
	WorkerID       string    `json:"worker_id"`
	ConversationID string    `json:"conversation_id"`
	Attempt        int       `json:"attempt"`
	Status         AckStatus `json:"status"`
	Reason         string    `json:"reason,omitempty"` // required when rejected
	State          *State    `json:"state"`            // the worker's load after the ack
}

// ContentType implements [Message].
func (Ack) ContentType() string { return ContentTypeAck }
func (Ack) name() string        { return "ack" }
func (a Ack) check() error {
	if err := checkVersion(a.Version); err != nil {
		return err
	}
	if err := checkID("worker_id", a.WorkerID); err != nil {
		return err
	}
	if err := checkConversation(a.ConversationID, a.Attempt); err != nil {
		return err
	}
	switch a.Status {
	case AckAccepted, AckDeferred:
	case AckRejected:
		if a.Reason == "" {
			return missing("reason")
		}
	case "":
		return missing("status")
	default:
		return invalid("status", "%q is not accepted, deferred or rejected", truncate(string(a.Status)))
	}
	return a.State.check("state")
}

// Response is a worker's answer to a request it accepted, sent to the
// request's reply subject.
type Response struct {
	Version        int     `json:"version"`
	WorkerID       string  `json:"worker_id"`
	ConversationID string  `json:"conversation_id"`
	Attempt        int     `json:"attempt"`
	Result         *Result `json:"result"`
	State          *State  `json:"state"` // the worker's load once the activity is off it
}

// ContentType implements [Message].
func (Response) ContentType() string { return ContentTypeResponse }
func (Response) name() string        { return "response" }
func (r Response) check() error {
	if err := checkVersion(r.Version); err != nil {
		return err
	}
	if err := checkID("worker_id", r.WorkerID); err != nil {
		return err
	}
	if err := checkConversation(r.ConversationID, r.Attempt); err != nil {
		return err
	}
	if r.Result == nil {
		return missing("result")
	}
	if _, err := r.Result.Engine(); err != nil {
		return err
	}
	return r.State.check("state")
}

// Cancel tells a worker that dispatch no longer waits for an activity
// (its conversation closed: a timeout, the caller gave up), on
// [CancelSubject]: the worker may stop it. No answer is expected.
type Cancel struct {
	Version  int    `json:"version"`
	WorkerID string `json:"worker_id"`
	// Instance is the instance of the registered worker, as in [Request].
	Instance       string `json:"instance"`
	ConversationID string `json:"conversation_id"`
	Attempt        int    `json:"attempt"`
	Reason         string `json:"reason,omitempty"`
}

// ContentType implements [Message].
func (Cancel) ContentType() string { return ContentTypeCancel }
func (Cancel) name() string        { return "cancel" }
func (c Cancel) check() error {
	if err := checkVersion(c.Version); err != nil {
		return err
	}
	if err := checkID("worker_id", c.WorkerID); err != nil {
		return err
	}
	if err := checkID("instance", c.Instance); err != nil {
		return err
	}
	return checkConversation(c.ConversationID, c.Attempt)
}

// Payload is an activity's input or output on the wire, in the journal's
// form: "data" holds JSON under a JSON content type and a string for
// other text; binary data is base64 in "data_base64".
type Payload struct {
	ContentType string          `json:"content_type,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	DataBase64  string          `json:"data_base64,omitempty"`
}

// PayloadOf returns the wire form of p, written as the journal writes a
// payload (docs/journal.md). It holds its own copy of the data.
func PayloadOf(p engine.Payload) Payload {
	out := Payload{ContentType: p.ContentType}
	switch jsonform.FormOf(p.ContentType, p.Data) {
	case jsonform.NoData:
	case jsonform.Embedded:
		out.Data = bytes.Clone(p.Data)
	case jsonform.String:
		out.Data = jsonform.AppendString(nil, string(p.Data))
	case jsonform.Base64:
		out.DataBase64 = base64.StdEncoding.EncodeToString(p.Data)
	}
	return out
}

// Engine returns the payload p stands for.
func (p Payload) Engine(field string) (engine.Payload, error) {
	out := engine.Payload{ContentType: p.ContentType}
	switch {
	case len(p.Data) > 0 && p.DataBase64 != "":
		return engine.Payload{}, invalid(field, "both data and data_base64 are set")
	case p.DataBase64 != "":
		d, err := base64.StdEncoding.DecodeString(p.DataBase64)
		if err != nil {
			return engine.Payload{}, invalid(field+".data_base64", "%v", err)
		}
		out.Data = d
	case len(p.Data) > 0 && p.Data[0] == '"':
		var s string
		if err := json.Unmarshal(p.Data, &s); err != nil {
			return engine.Payload{}, invalid(field+".data", "%v", err)
		}
		if s != "" {
			out.Data = []byte(s)
		}
	case len(p.Data) > 0 && !bytes.Equal(p.Data, []byte("null")):
		out.Data = bytes.Clone(p.Data)
	}
	return out, nil
}

// Activity is an activity request on the wire, in the journal's form:
// timeouts are Go durations ("2s"); absent means no bound.
type Activity struct {
	WorkflowID      string   `json:"workflow_id,omitempty"`
	ActivityType    string   `json:"activity_type"`
	TaskQueue       string   `json:"task_queue,omitempty"`
	Input           *Payload `json:"input,omitempty"`
	ScheduleToClose string   `json:"schedule_to_close,omitempty"`
	StartToClose    string   `json:"start_to_close,omitempty"`
	ScheduleToStart string   `json:"schedule_to_start,omitempty"`
}

// ActivityOf returns the wire form of r.
func ActivityOf(r engine.ActivityRequest) *Activity {
	a := &Activity{
		WorkflowID:      r.WorkflowID,
		ActivityType:    r.ActivityType,
		TaskQueue:       r.TaskQueue,
		ScheduleToClose: durationText(r.ScheduleToClose),
		StartToClose:    durationText(r.StartToClose),
		ScheduleToStart: durationText(r.ScheduleToStart),
	}
	if !r.Input.IsZero() {
		p := PayloadOf(r.Input)
		a.Input = &p
	}
	return a
}

// Engine returns the activity request a stands for.
func (a *Activity) Engine() (engine.ActivityRequest, error) {
	if a.ActivityType == "" {
		return engine.ActivityRequest{}, missing("activity.activity_type")
	}
	r := engine.ActivityRequest{WorkflowID: a.WorkflowID, ActivityType: a.ActivityType, TaskQueue: a.TaskQueue}
	if a.Input != nil {
		p, err := a.Input.Engine("activity.input")
		if err != nil {
			return engine.ActivityRequest{}, err
		}
		r.Input = p
	}
	for _, d := range []struct {
		field string
		text  string
		to    *time.Duration
	}{
		{"activity.schedule_to_close", a.ScheduleToClose, &r.ScheduleToClose},
		{"activity.start_to_close", a.StartToClose, &r.StartToClose},
		{"activity.schedule_to_start", a.ScheduleToStart, &r.ScheduleToStart},
	} {
		if d.text == "" {
			continue
		}
		v, err := time.ParseDuration(d.text)
		if err != nil || v < 0 {
			return engine.ActivityRequest{}, invalid(d.field, "%q is not a duration of zero or more", truncate(d.text))
		}
		*d.to = v
	}
	return r, nil
}

func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// Result is an activity's result on the wire: {"status": "completed",
// "output": …} or {"status": "failed", "error": "…"}.
type Result struct {
	Status string   `json:"status"`
	Output *Payload `json:"output,omitempty"`
	Error  string   `json:"error,omitempty"`
}

// ResultOf returns the wire form of r.
func ResultOf(r engine.ActivityResult) *Result {
	if r.Status == engine.StatusFailed {
		return &Result{Status: "failed", Error: r.Error}
	}
	out := &Result{Status: "completed"}
	if !r.Output.IsZero() {
		p := PayloadOf(r.Output)
		out.Output = &p
	}
	return out
}

// Engine returns the result r stands for.
func (r *Result) Engine() (engine.ActivityResult, error) {
	switch r.Status {
	case "completed":
		if r.Error != "" {
			return engine.ActivityResult{}, invalid("result.error", "set on a completed result")
		}
		var out engine.Payload
		if r.Output != nil {
			p, err := r.Output.Engine("result.output")
			if err != nil {
				return engine.ActivityResult{}, err
			}
			out = p
		}
		return engine.Completed(out), nil
	case "failed":
		if r.Output != nil {
			return engine.ActivityResult{}, invalid("result.output", "set on a failed result")
		}
		return engine.Failed(r.Error), nil
	case "":
		return engine.ActivityResult{}, missing("result.status")
	}
	return engine.ActivityResult{}, invalid("result.status", "%q is not completed or failed", truncate(r.Status))
}
