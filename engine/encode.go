package engine

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends op's journal line (without a newline) to dst. It writes
// what MarshalJSON writes, without reflection: the journal encodes every
// operation of every dispatch, and encoding/json costs several microseconds
// for one, most of it re-validating the output of nested MarshalJSON calls.
func (op Operation) AppendJSON(dst []byte) ([]byte, error) {
	if op.Kind == 0 || int(op.Kind) >= len(opKindNames) {
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
		e.key("channel") // the String form, without building it
		e.buf = append(e.buf, '"')
		e.buf = appendEscaped(e.buf, channelPrefix)
		e.buf = appendEscaped(e.buf, op.Channel.namespace)
		e.buf = append(e.buf, '.')
		e.buf = appendEscaped(e.buf, op.Channel.taskQueue)
		e.buf = append(e.buf, '"')
	}
	e.key("kind")
	e.buf = appendString(e.buf, opKindNames[op.Kind])
	e.str("worker_id", op.WorkerID)
	if !op.State.IsZero() {
		e.key("state")
		if err := e.state(op.State); err != nil {
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
	if op.Router != (RouterVersion{}) {
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
			e.candidate(c)
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

func (e *encoder) state(s ActivityState) error {
	if s.Name == 0 || int(s.Name) >= len(stateNames) {
		return fmt.Errorf("invalid activity state %d", s.Name)
	}
	if s.Name != ActivityFailed && s.RetryEligible {
		return fmt.Errorf("state %s cannot be retry eligible", s.Name)
	}
	e.buf = append(e.buf, `{"name":`...)
	e.buf = appendString(e.buf, stateNames[s.Name])
	if s.Name == ActivityFailed {
		e.buf = append(e.buf, `,"retry_eligible":`...)
		e.buf = strconv.AppendBool(e.buf, s.RetryEligible)
	}
	e.buf = append(e.buf, '}')
	return nil
}

func (e *encoder) result(r ActivityResult) error {
	switch {
	case r.Status == StatusCompleted && r.Error != "":
		return errors.New("result: completed with an error")
	case r.Status == StatusFailed && !r.Output.IsZero():
		return errors.New("result: failed with an output")
	case r.Status == StatusCompleted:
		e.buf = append(e.buf, `{"status":"completed"`...)
		if !r.Output.IsZero() {
			e.key("output")
			e.payload(r.Output)
		}
	case r.Status == StatusFailed:
		e.buf = append(e.buf, `{"status":"failed"`...)
		e.str("error", r.Error)
	default:
		return fmt.Errorf("result: invalid status %d", r.Status)
	}
	e.buf = append(e.buf, '}')
	return nil
}

func (e *encoder) payload(p Payload) {
	e.buf = append(e.buf, '{')
	e.str("content_type", p.ContentType)
	switch {
	case len(p.Data) == 0:
	case isJSONContentType(p.ContentType) && embeddableJSON(p.Data):
		e.key("data")
		e.buf = append(e.buf, p.Data...)
	case utf8.Valid(p.Data):
		e.key("data")
		e.buf = appendString(e.buf, string(p.Data))
	default:
		e.key("data_base64")
		e.buf = append(e.buf, '"')
		e.buf = base64.StdEncoding.AppendEncode(e.buf, p.Data)
		e.buf = append(e.buf, '"')
	}
	e.buf = append(e.buf, '}')
}

func (e *encoder) candidate(c ConsumerStateView) {
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
	e.buf = append(e.buf, '}')
}

func (e *encoder) request(r ActivityRequest) {
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

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping what JSON requires and
// what encoding/json escapes (<, >, &, U+2028, U+2029), with invalid UTF-8
// replaced by U+FFFD, so that the line is the one json.Marshal would write.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// plainASCII marks the ASCII bytes a JSON string holds as they are.
var plainASCII = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// appendEscaped appends s escaped as the inside of a JSON string.
func appendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if plainASCII[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}
