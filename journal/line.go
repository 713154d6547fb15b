package journal

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/internal/jsonform"
)

// AppendLine appends op's journal line (see docs/journal.md), without a
// newline, to dst. It writes what encoding/json would write of the line's
// tagged form, without reflection: the journal encodes every operation of
// every dispatch, and encoding/json costs several microseconds for one.
// Values the line cannot hold (an unknown kind, state or status, a state
// other than activity_failed that is retry eligible, a result with both or
// neither of output and error as its status says, a time outside the years
// RFC 3339 can write) are errors, and dst comes back as it was.
//
// [ReadAll], [Reader] and the other readers of this package read what it
// writes, the exact inverse: bytes, durations and states come back as they
// were, with nil standing for an empty slice.
func AppendLine(dst []byte, op engine.Operation) ([]byte, error) {
	var name [32]byte // room for any kind's or state's name, on the stack
	if _, err := op.Kind.AppendText(name[:0]); err != nil {
		return dst, fmt.Errorf("operation: invalid kind %d", op.Kind)
	}
	e := encoder{buf: append(dst, '{')}
	if op.Seq != 0 {
		e.key("seq")
		e.buf = strconv.AppendUint(e.buf, op.Seq, 10)
	}
	if !op.Time.IsZero() {
		if y := op.Time.UTC().Year(); y < 0 || y > 9999 {
			return dst, fmt.Errorf("operation: time %v is outside the years RFC 3339 can write", op.Time)
		}
		e.key("time")
		e.buf = append(e.buf, '"')
		e.buf = op.Time.UTC().AppendFormat(e.buf, time.RFC3339Nano)
		e.buf = append(e.buf, '"')
	}
	e.str("workflow_id", op.WorkflowID)
	e.str("conversation_id", op.ConversationID)
	if !op.Channel.IsZero() {
		e.key("channel")
		e.channel(op.Channel)
	}
	e.key("kind")
	e.buf = append(e.buf, '"')
	e.buf, _ = op.Kind.AppendText(e.buf) // a name of letters and underscores
	e.buf = append(e.buf, '"')
	e.str("worker_id", op.WorkerID)
	if !op.State.IsZero() {
		e.key("state")
		if err := e.state(op.State, name[:0]); err != nil {
			return dst, err
		}
	}
	if !op.Result.IsZero() {
		e.key("result")
		if err := e.result(op.Result); err != nil {
			return dst, err
		}
	}
	e.str("message", op.Message)
	if op.Attempt != 0 {
		e.key("attempt")
		e.buf = strconv.AppendInt(e.buf, int64(op.Attempt), 10)
	}
	e.str("waited", durationText(op.Waited))
	if op.Router != (engine.RouterVersion{}) {
		e.key("router")
		e.buf = append(e.buf, `{"lang":`...)
		e.buf = appendString(e.buf, op.Router.Lang)
		e.str("hash", op.Router.Hash)
		e.str("source", op.Router.Source)
		e.buf = append(e.buf, '}')
	}
	if len(op.Candidates) > 0 {
		e.key("candidates")
		e.buf = append(e.buf, '[')
		for i, c := range op.Candidates {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.candidate(c); err != nil {
				return dst, err
			}
		}
		e.buf = append(e.buf, ']')
	}
	if len(op.Excluded) > 0 {
		e.key("excluded")
		e.strings(op.Excluded)
	}
	if !op.Request.IsZero() {
		e.key("request")
		e.request(op.Request)
	}
	return append(e.buf, '}'), nil
}

// encoder appends JSON objects' members.
type encoder struct {
	buf []byte
}

// key starts a member, after a comma unless the object was just opened.
func (e *encoder) key(k string) {
	if len(e.buf) > 0 && e.buf[len(e.buf)-1] != '{' {
		e.buf = append(e.buf, ',')
	}
	e.buf = append(e.buf, '"')
	e.buf = append(e.buf, k...)
	e.buf = append(e.buf, '"', ':')
}

// str writes a string member, unless it is empty.
func (e *encoder) str(k, v string) {
	if v != "" {
		e.key(k)
		e.buf = appendString(e.buf, v)
	}
}

func (e *encoder) strings(vs []string) {
	e.buf = append(e.buf, '[')
	for i, v := range vs {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendString(e.buf, v)
	}
	e.buf = append(e.buf, ']')
}

// channel writes c's String form, without building it.
func (e *encoder) channel(c engine.ChannelName) {
	e.buf = append(e.buf, '"')
	start := len(e.buf)
	e.buf, _ = c.AppendText(e.buf) // not zero: no error
	if !jsonform.Plain(e.buf[start:]) {
		name := string(e.buf[start:])
		e.buf = jsonform.AppendEscaped(e.buf[:start], name)
	}
	e.buf = append(e.buf, '"')
}

// state writes s; scratch is room to check its name in.
func (e *encoder) state(s engine.ActivityState, scratch []byte) error {
	if _, err := s.Name.AppendText(scratch); err != nil {
		return fmt.Errorf("invalid activity state %d", s.Name)
	}
	if s.Name != engine.ActivityFailed && s.RetryEligible {
		return fmt.Errorf("state %s cannot be retry eligible", s.Name)
	}
	e.buf = append(e.buf, `{"name":"`...)
	e.buf, _ = s.Name.AppendText(e.buf) // a name of letters and underscores
	e.buf = append(e.buf, '"')
	if s.Name == engine.ActivityFailed {
		e.buf = append(e.buf, `,"retry_eligible":`...)
		e.buf = strconv.AppendBool(e.buf, s.RetryEligible)
	}
	e.buf = append(e.buf, '}')
	return nil
}

func (e *encoder) result(r engine.ActivityResult) error {
	switch {
	case r.Status == engine.StatusCompleted && r.Error != "":
		return errors.New("result: completed with an error")
	case r.Status == engine.StatusFailed && !r.Output.IsZero():
		return errors.New("result: failed with an output")
	case r.Status == engine.StatusCompleted:
		e.buf = append(e.buf, `{"status":"completed"`...)
		if !r.Output.IsZero() {
			e.key("output")
			e.payload(r.Output)
		}
	case r.Status == engine.StatusFailed:
		e.buf = append(e.buf, `{"status":"failed"`...)
		e.str("error", r.Error)
	default:
		return fmt.Errorf("result: invalid status %d", r.Status)
	}
	e.buf = append(e.buf, '}')
	return nil
}

func (e *encoder) payload(p engine.Payload) {
	e.buf = append(e.buf, '{')
	e.str("content_type", p.ContentType)
	switch jsonform.FormOf(p.ContentType, p.Data) {
	case jsonform.NoData:
	case jsonform.Embedded:
		e.key("data")
		e.buf = append(e.buf, p.Data...)
	case jsonform.String:
		e.key("data")
		e.buf = appendString(e.buf, string(p.Data))
	case jsonform.Base64:
		e.key("data_base64")
		e.buf = append(e.buf, '"')
		e.buf = base64.StdEncoding.AppendEncode(e.buf, p.Data)
		e.buf = append(e.buf, '"')
	}
	e.buf = append(e.buf, '}')
}

func (e *encoder) candidate(c engine.ConsumerStateView) error {
	for _, f := range [...]float64{c.LatencyEWMA, c.LatencyPeakEWMA, c.ErrorRate} {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("candidate %s: observed figure %v is not a number JSON can hold", c.ID, f)
		}
	}
	e.buf = append(e.buf, `{"id":`...)
	e.buf = appendString(e.buf, c.ID)
	e.buf = append(e.buf, `,"in_flight":`...)
	e.buf = strconv.AppendInt(e.buf, int64(c.InFlight), 10)
	e.buf = append(e.buf, `,"max_in_flight":`...)
	e.buf = strconv.AppendInt(e.buf, int64(c.MaxInFlight), 10)
	e.buf = append(e.buf, `,"buffer_depth":`...)
	e.buf = strconv.AppendInt(e.buf, int64(c.BufferDepth), 10)
	if len(c.Tags) > 0 {
		e.buf = append(e.buf, `,"tags":`...)
		e.strings(c.Tags)
	}
	if len(c.Labels) > 0 {
		// In key order, as encoding/json writes a map.
		e.buf = append(e.buf, `,"labels":{`...)
		for i, k := range slices.Sorted(maps.Keys(c.Labels)) {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.buf = appendString(e.buf, k)
			e.buf = append(e.buf, ':')
			e.buf = appendString(e.buf, c.Labels[k])
		}
		e.buf = append(e.buf, '}')
	}
	e.float(`,"latency_ewma":`, c.LatencyEWMA)
	e.float(`,"latency_peak_ewma":`, c.LatencyPeakEWMA)
	e.float(`,"error_rate":`, c.ErrorRate)
	if c.Exits != 0 {
		e.buf = append(e.buf, `,"exits":`...)
		e.buf = strconv.AppendInt(e.buf, int64(c.Exits), 10)
	}
	e.buf = append(e.buf, '}')
	return nil
}

// float appends key and f unless f is 0, as encoding/json writes a float64
// field with omitempty: 'f' form, or 'e' form with a short exponent below
// 1e-6 and from 1e21. f is finite (the view's CheckObserved holds).
func (e *encoder) float(key string, f float64) {
	if f == 0 {
		return
	}
	e.buf = append(e.buf, key...)
	form := byte('f')
	if a := math.Abs(f); a < 1e-6 || a >= 1e21 {
		form = 'e'
	}
	e.buf = strconv.AppendFloat(e.buf, f, form, -1, 64)
	if n := len(e.buf); form == 'e' && n >= 4 && e.buf[n-4] == 'e' && e.buf[n-3] == '-' && e.buf[n-2] == '0' {
		e.buf[n-2] = e.buf[n-1] // e-07 → e-7
		e.buf = e.buf[:n-1]
	}
}

func (e *encoder) request(r engine.ActivityRequest) {
	e.buf = append(e.buf, '{')
	e.str("workflow_id", r.WorkflowID)
	e.str("activity_type", r.ActivityType)
	e.str("task_queue", r.TaskQueue)
	if !r.Input.IsZero() {
		e.key("input")
		e.payload(r.Input)
	}
	e.str("schedule_to_close", durationText(r.ScheduleToClose))
	e.str("start_to_close", durationText(r.StartToClose))
	e.str("schedule_to_start", durationText(r.ScheduleToStart))
	e.buf = append(e.buf, '}')
}

// appendString appends s as a JSON string, as json.Marshal would write it.
func appendString(dst []byte, s string) []byte { return jsonform.AppendString(dst, s) }

// durationText is a duration's form in a line: Go's ("1.5s"), absent when 0.
func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}
