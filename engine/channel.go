package engine

import (
	"fmt"
	"strings"
	"unicode"
)

// channelPrefix is the subject prefix every dispatch channel shares.
const channelPrefix = "aion.dispatch."

// ChannelName names the dispatch channel of one task queue in one namespace.
// Its text form is "aion.dispatch.{namespace}.{task_queue}". The zero value is
// not a valid channel; build one with [DispatchChannel] or [ParseChannelName].
type ChannelName struct {
	namespace string
	taskQueue string
}

// DispatchChannel returns the channel of taskQueue in namespace. Each part must
// be non-empty and free of '.', whitespace, '*' and '>'; otherwise the error is
// a [*ChannelNameError] that matches [ErrInvalidChannel].
func DispatchChannel(namespace, taskQueue string) (ChannelName, error) {
	if err := checkChannelPart("namespace", namespace); err != nil {
		return ChannelName{}, err
	}
	if err := checkChannelPart("task queue", taskQueue); err != nil {
		return ChannelName{}, err
	}
	return ChannelName{namespace: namespace, taskQueue: taskQueue}, nil
}

// ParseChannelName parses the text form "aion.dispatch.{namespace}.{task_queue}".
func ParseChannelName(s string) (ChannelName, error) {
	rest, ok := strings.CutPrefix(s, channelPrefix)
	if !ok {
		return ChannelName{}, &ChannelNameError{Part: "name", Value: s, Reason: "does not start with " + channelPrefix}
	}
	ns, queue, ok := strings.Cut(rest, ".")
	if !ok {
		return ChannelName{}, &ChannelNameError{Part: "name", Value: s, Reason: "has no task queue"}
	}
	return DispatchChannel(ns, queue)
}

// Namespace returns the namespace part.
func (c ChannelName) Namespace() string { return c.namespace }

// TaskQueue returns the task queue part.
func (c ChannelName) TaskQueue() string { return c.taskQueue }

// IsZero reports whether c is the zero value, which names no channel.
func (c ChannelName) IsZero() bool { return c.namespace == "" && c.taskQueue == "" }

// Short returns "{namespace}/{task_queue}", the form configs and the CLI
// use, or "" for the zero value.
func (c ChannelName) Short() string {
	if c.IsZero() {
		return ""
	}
	return c.namespace + "/" + c.taskQueue
}

// String returns "aion.dispatch.{namespace}.{task_queue}", or "" for the zero value.
func (c ChannelName) String() string {
	if c.IsZero() {
		return ""
	}
	return channelPrefix + c.namespace + "." + c.taskQueue
}

// MarshalText implements [encoding.TextMarshaler]. The zero value, which
// names no channel, is an error.
func (c ChannelName) MarshalText() ([]byte, error) { return c.AppendText(nil) }

// AppendText implements [encoding.TextAppender]: it appends the String
// form without building it. The zero value is an error, as for
// MarshalText.
func (c ChannelName) AppendText(b []byte) ([]byte, error) {
	if c.IsZero() {
		return b, &ChannelNameError{Part: "name", Reason: "is empty"}
	}
	b = append(b, channelPrefix...)
	b = append(b, c.namespace...)
	b = append(b, '.')
	return append(b, c.taskQueue...), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler]; it accepts the form
// [ChannelName.String] produces.
func (c *ChannelName) UnmarshalText(b []byte) error {
	parsed, err := ParseChannelName(string(b))
	if err != nil {
		return err
	}
	*c = parsed
	return nil
}

// ChannelNameError says which part of a channel name is invalid and why.
type ChannelNameError struct {
	Part   string // "namespace", "task queue" or "name" (the whole name)
	Value  string // the rejected text
	Reason string // what is wrong with it
}

// Error implements error.
func (e *ChannelNameError) Error() string {
	return fmt.Sprintf("invalid channel %s %q: %s", e.Part, e.Value, e.Reason)
}

// Is makes a ChannelNameError match [ErrInvalidChannel].
func (e *ChannelNameError) Is(target error) bool { return target == ErrInvalidChannel }

func checkChannelPart(part, v string) error {
	if v == "" {
		return &ChannelNameError{Part: part, Value: v, Reason: "is empty"}
	}
	for _, r := range v {
		switch {
		case r == '.':
			return &ChannelNameError{Part: part, Value: v, Reason: "contains '.'"}
		case r == '*' || r == '>':
			return &ChannelNameError{Part: part, Value: v, Reason: fmt.Sprintf("contains wildcard %q", r)}
		case unicode.IsSpace(r):
			return &ChannelNameError{Part: part, Value: v, Reason: "contains whitespace"}
		case !unicode.IsPrint(r):
			return &ChannelNameError{Part: part, Value: v, Reason: "contains a control character"}
		}
	}
	return nil
}
