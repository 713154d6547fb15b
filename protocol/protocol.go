// Package protocol is the wire protocol between dispatch and its remote
// workers over NATS: the subjects, the messages, their content types, and
// their strict encoding and decoding. docs/protocol.md describes it for
// implementers in other languages. It also holds the documents clients
// submit activities with and are answered in, over HTTP and NATS
// ([Submission], [Answer]; docs/operations.md).
//
// Every message is a JSON object tagged with its content type in a
// Content-Type NATS header, and carries the protocol version it was
// written for ("version": 1). Decoding is strict: a wrong content type,
// malformed JSON, an unknown field, data after the object, a missing
// required field, an unsupported version or a body larger than
// [MaxBodySize] is refused with an error matching one of this package's
// sentinels through [errors.Is].
package protocol

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"reflect"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Version is the protocol version this package speaks. A reader refuses
// a message of any other version: since readers also refuse unknown
// fields, a message with a new field is a new version.
const Version = 1

// MaxBodySize bounds the body of a message [Decode] accepts: the NATS
// server's default max_payload, 1 MiB.
const MaxBodySize = 1 << 20

// HeaderContentType is the NATS header that carries a message's content
// type.
const HeaderContentType = "Content-Type"

// The content types of the messages.
const (
	ContentTypeRegistration   = "application/vnd.aion.dispatch.registration+json"
	ContentTypeStatus         = "application/vnd.aion.dispatch.status+json"
	ContentTypeDeregistration = "application/vnd.aion.dispatch.deregistration+json"
	ContentTypeHello          = "application/vnd.aion.dispatch.hello+json"
	ContentTypeRequest        = "application/vnd.aion.dispatch.request+json"
	ContentTypeAck            = "application/vnd.aion.dispatch.ack+json"
	ContentTypeResponse       = "application/vnd.aion.dispatch.response+json"
	ContentTypeCancel         = "application/vnd.aion.dispatch.cancel+json"
)

// Sentinel causes of a refused message; match them with [errors.Is].
var (
	ErrContentType  = errors.New("wrong content type")
	ErrTooLarge     = errors.New("message too large")
	ErrMalformed    = errors.New("malformed json")
	ErrUnknownField = errors.New("unknown field")
	ErrTrailingData = errors.New("trailing data after the message")
	ErrMissingField = errors.New("missing required field")
	ErrVersion      = errors.New("unsupported protocol version")
	ErrInvalid      = errors.New("invalid field")
)

// DecodeError is the error of a refused message: which message was
// expected, and why it was refused (Err matches a sentinel).
type DecodeError struct {
	Message string // "request", "ack", ...
	Err     error
}

// Error implements error: "decode ack: unknown field \"x\"".
func (e *DecodeError) Error() string { return "decode " + e.Message + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *DecodeError) Unwrap() error { return e.Err }

// Message is one of the protocol's messages.
type Message interface {
	// ContentType returns the message's content type.
	ContentType() string
	// name is the message's name in errors.
	name() string
	// check reports a missing or invalid field.
	check() error
}

// Encode checks m and returns its JSON body and content type. A message
// that a reader would refuse is not encoded.
func Encode(m Message) (body []byte, contentType string, err error) {
	if err := m.check(); err != nil {
		return nil, "", fmt.Errorf("encode %s: %w", m.name(), err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, "", fmt.Errorf("encode %s: %w", m.name(), err)
	}
	if len(b) > MaxBodySize {
		return nil, "", fmt.Errorf("encode %s: %w: %d bytes, at most %d", m.name(), ErrTooLarge, len(b), MaxBodySize)
	}
	return b, m.ContentType(), nil
}

// Decode reads body, whose content type is contentType, into m, strictly:
// see the package documentation. m is changed only when Decode succeeds.
func Decode(contentType string, body []byte, m Message) error {
	if err := decode(contentType, body, m); err != nil {
		return &DecodeError{Message: m.name(), Err: err}
	}
	return nil
}

func decode(contentType string, body []byte, m Message) error {
	if !sameMediaType(contentType, m.ContentType()) {
		if contentType == "" {
			return fmt.Errorf("%w: none, want %s", ErrContentType, m.ContentType())
		}
		return fmt.Errorf("%w: %q, want %s", ErrContentType, truncate(contentType), m.ContentType())
	}
	if len(body) > MaxBodySize {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(body), MaxBodySize)
	}
	// Decode into a fresh value: a failed decode leaves m as it was.
	rv := reflect.ValueOf(m)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("decode into %T: want a non-nil pointer", m)
	}
	fresh, ok := reflect.New(rv.Elem().Type()).Interface().(Message)
	if !ok {
		return fmt.Errorf("decode into %T: not a message", m)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(fresh); err != nil {
		if rest, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fmt.Errorf("%w %s", ErrUnknownField, rest)
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: empty body", ErrMalformed)
		}
		return fmt.Errorf("%w: %s", ErrMalformed, strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ErrTrailingData
	}
	if err := fresh.check(); err != nil {
		return err
	}
	rv.Elem().Set(reflect.ValueOf(fresh).Elem())
	return nil
}

// sameMediaType reports whether got names the media type want, parameters
// aside.
func sameMediaType(got, want string) bool {
	if got == want {
		return true
	}
	mt, _, err := mime.ParseMediaType(got)
	return err == nil && mt == want
}

// truncate shortens a string from the wire for an error message.
func truncate(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// NewMsg returns a NATS message to subject carrying m, with its content
// type in the Content-Type header.
func NewMsg(subject string, m Message) (*nats.Msg, error) {
	body, ct, err := Encode(m)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(subject)
	msg.Header.Set(HeaderContentType, ct)
	msg.Data = body
	return msg, nil
}

// ContentTypeOf returns the content type of a NATS message, or "".
func ContentTypeOf(msg *nats.Msg) string {
	if msg.Header == nil {
		return ""
	}
	return msg.Header.Get(HeaderContentType)
}

// DecodeMsg decodes a NATS message into m (see [Decode]).
func DecodeMsg(msg *nats.Msg, m Message) error { return Decode(ContentTypeOf(msg), msg.Data, m) }

// checkVersion reports a missing or unsupported version.
func checkVersion(v int) error {
	switch v {
	case Version:
		return nil
	case 0:
		return missing("version")
	}
	return fmt.Errorf("%w %d (this side speaks %d)", ErrVersion, v, Version)
}

func missing(field string) error { return fmt.Errorf("%w %q", ErrMissingField, field) }

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w %q: %s", ErrInvalid, field, fmt.Sprintf(format, args...))
}

// MaxIDLength bounds worker, instance, node and conversation ids.
const MaxIDLength = 256

// CheckToken reports whether s can be one token of a NATS subject, as
// worker and node ids must: not empty, at most [MaxIDLength] bytes, no
// '.', '*', '>' and no whitespace or control characters.
func CheckToken(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxIDLength:
		return fmt.Errorf("longer than %d bytes", MaxIDLength)
	}
	for _, r := range s {
		if r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("%q holds %q, which a subject token cannot", truncate(s), r)
		}
	}
	return nil
}

// checkID checks a required id that is a subject token.
func checkID(field, s string) error {
	if s == "" {
		return missing(field)
	}
	if err := CheckToken(s); err != nil {
		return invalid(field, "%v", err)
	}
	return nil
}

// checkText checks a required free-text id (a conversation id).
func checkText(field, s string) error {
	switch {
	case s == "":
		return missing(field)
	case len(s) > MaxIDLength:
		return invalid(field, "longer than %d bytes", MaxIDLength)
	}
	return nil
}

// FlushTimeout bounds [Flush] when ctx has no deadline.
const FlushTimeout = 10 * time.Second

// Flush waits for a round trip to the server on nc, so that what was
// published and subscribed before has reached it; ctx bounds the wait
// (FlushTimeout when it has no deadline).
func Flush(ctx context.Context, nc *nats.Conn) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, FlushTimeout)
		defer cancel()
	}
	return nc.FlushWithContext(ctx)
}
