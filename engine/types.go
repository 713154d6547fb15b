package engine

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Payload is an activity's input or output: bytes and the content type that
// says how to read them.
type Payload struct {
	ContentType string
	Data        []byte
}

// IsZero reports whether p has neither content type nor data.
func (p Payload) IsZero() bool { return p.ContentType == "" && len(p.Data) == 0 }

// ActivityRequest is one activity a workflow asks to run.
type ActivityRequest struct {
	WorkflowID   string
	ActivityType string
	// TaskQueue names the channel, with the namespace [Dispatcher.Dispatch]
	// is given; the worker receives it with the activity.
	TaskQueue string
	Input     Payload
	// ScheduleToClose bounds the whole conversation, re-routes included.
	// Zero means no bound.
	ScheduleToClose time.Duration
	// StartToClose bounds each attempt's wait for the worker's answer,
	// from when the request is sent into a free slot. Zero means no bound.
	StartToClose time.Duration
	// ScheduleToStart bounds each wait in the channel's backlog for a
	// worker with a free slot (before the first attempt, and after a
	// worker exits). Zero means no bound.
	ScheduleToStart time.Duration
}

// IsZero reports whether r is the zero value, which means "no request".
func (r ActivityRequest) IsZero() bool {
	return r.WorkflowID == "" && r.ActivityType == "" && r.TaskQueue == "" &&
		r.Input.IsZero() && r.ScheduleToClose == 0 && r.StartToClose == 0 && r.ScheduleToStart == 0
}

// ResultStatus says how an activity ended. The zero value is invalid.
type ResultStatus uint8

// The statuses of an [ActivityResult].
const (
	StatusCompleted ResultStatus = iota + 1
	StatusFailed
)

// String returns "completed", "failed" or "invalid".
func (s ResultStatus) String() string {
	switch s {
	case StatusCompleted:
		return "completed"
	case StatusFailed:
		return "failed"
	}
	return "invalid"
}

// ActivityResult is a worker's answer: Completed with an output, or Failed
// with an error message. Build one with [Completed] or [Failed].
type ActivityResult struct {
	Status ResultStatus
	Output Payload // set when Completed
	Error  string  // set when Failed
}

// IsZero reports whether r is the zero value, which means "no result".
func (r ActivityResult) IsZero() bool { return r.Status == 0 }

// Completed returns a completed result carrying output.
func Completed(output Payload) ActivityResult {
	return ActivityResult{Status: StatusCompleted, Output: output}
}

// Failed returns a failed result carrying the worker's error message.
func Failed(message string) ActivityResult {
	return ActivityResult{Status: StatusFailed, Error: message}
}

// ConsumerStateView is what a router sees of one worker: its load, tags
// and labels, and what its channel observed of it (latency, errors,
// exits). The observed figures are the transport's; a worker nothing was
// observed of yet has them all 0, which routers read as "no figure", not
// as "fast and healthy" (see docs/scripting.md).
type ConsumerStateView struct {
	ID          string   `json:"id"`
	InFlight    int      `json:"in_flight"`
	MaxInFlight int      `json:"max_in_flight"`
	BufferDepth int      `json:"buffer_depth"`
	Tags        []string `json:"tags,omitempty"`
	// Labels are the worker's key-value labels (region: eu), as
	// [CheckLabels] allows them. A router reads them and never changes
	// them.
	Labels map[string]string `json:"labels,omitempty"`

	// LatencyEWMA is the moving average, in seconds, of how long the
	// worker took to answer the activities of this channel: from the
	// request to the answer, completed or failed. Each sample counts
	// alike and counts for half as much every [ObservedHalfLife]. 0: none
	// answered yet.
	LatencyEWMA float64 `json:"latency_ewma,omitempty"`
	// LatencyPeakEWMA is the peak-sensitive average of the same samples,
	// in seconds, as Finagle's peak EWMA: a sample above it raises it at
	// once; below it, it moves towards the sample by how much time passed
	// since the last; and while nothing is answered it decays towards 0
	// with [ObservedHalfLife], so that a worker that stopped getting work
	// is tried again. 0: none answered yet.
	LatencyPeakEWMA float64 `json:"latency_peak_ewma,omitempty"`
	// ErrorRate is the moving average, weighted as LatencyEWMA's, of
	// failed answers among answers (0..1): 1 for each failed, 0 for each
	// completed. Exits are not answers; they count in Exits. While nothing
	// is answered it decays towards 0 as the peak does, so that a worker
	// avoided for its errors is tried again (and, if it fails again, its
	// rate is back up at once: the faded answers count for little).
	ErrorRate float64 `json:"error_rate,omitempty"`
	// Exits is how many of the channel's activities the worker left
	// unanswered in the last [ObservedExitWindow] because it exited, its
	// connection ended, or it lost the request; at most [MaxObservedExits].
	Exits int `json:"exits,omitempty"`
}

// How observed figures age (see [ConsumerStateView]).
const (
	// ObservedHalfLife is how long it takes for a sample of latency or
	// errors to count for half as much.
	ObservedHalfLife = 10 * time.Second
	// ObservedExitWindow is how long an exit counts in Exits.
	ObservedExitWindow = time.Minute
	// MaxObservedExits is the most exits Exits counts.
	MaxObservedExits = 16
)

// CheckObserved refuses observed figures no transport reports: a negative
// or non-finite latency, an error rate outside 0..1, exits outside
// 0..MaxObservedExits.
func (v ConsumerStateView) CheckObserved() error {
	switch {
	case !(v.LatencyEWMA >= 0) || math.IsInf(v.LatencyEWMA, 0):
		return fmt.Errorf("worker %s: latency_ewma %v is not a finite number of seconds >= 0", v.ID, v.LatencyEWMA)
	case !(v.LatencyPeakEWMA >= 0) || math.IsInf(v.LatencyPeakEWMA, 0):
		return fmt.Errorf("worker %s: latency_peak_ewma %v is not a finite number of seconds >= 0", v.ID, v.LatencyPeakEWMA)
	case !(v.ErrorRate >= 0 && v.ErrorRate <= 1):
		return fmt.Errorf("worker %s: error_rate %v is not within 0..1", v.ID, v.ErrorRate)
	case v.Exits < 0 || v.Exits > MaxObservedExits:
		return fmt.Errorf("worker %s: exits %d is not within 0..%d", v.ID, v.Exits, MaxObservedExits)
	}
	return nil
}

// The limits on a worker's labels.
const (
	MaxLabels        = 32  // labels per worker
	MaxLabelKeyLen   = 63  // bytes of a key
	MaxLabelValueLen = 255 // bytes of a value
)

// CheckLabel refuses a label no worker can carry: an empty key, a key or
// value with spaces around it or not UTF-8, or one longer than the limits.
// A value may be empty.
func CheckLabel(key, value string) error {
	switch {
	case key == "":
		return fmt.Errorf("label key must be non-empty")
	case strings.TrimSpace(key) != key || !utf8.ValidString(key):
		return fmt.Errorf("label key %q must be UTF-8 without surrounding spaces", key)
	case len(key) > MaxLabelKeyLen:
		return fmt.Errorf("label key %.20q… is %d bytes; the limit is %d", key, len(key), MaxLabelKeyLen)
	case strings.TrimSpace(value) != value || !utf8.ValidString(value):
		return fmt.Errorf("label %s: value %q must be UTF-8 without surrounding spaces", key, value)
	case len(value) > MaxLabelValueLen:
		return fmt.Errorf("label %s: value is %d bytes; the limit is %d", key, len(value), MaxLabelValueLen)
	}
	return nil
}

// CheckLabels refuses a set of labels no worker can carry: more than
// [MaxLabels], or one [CheckLabel] refuses (the first in key order).
func CheckLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return fmt.Errorf("%d labels; the limit is %d", len(labels), MaxLabels)
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := CheckLabel(k, labels[k]); err != nil {
			return err
		}
	}
	return nil
}

// Available returns the free capacity, MaxInFlight − InFlight, never below 0.
func (v ConsumerStateView) Available() int {
	return max(v.MaxInFlight-v.InFlight, 0)
}

// HasCapacity reports whether the worker can start another activity now.
func (v ConsumerStateView) HasCapacity() bool { return v.Available() > 0 }

// HasAffinity reports whether the worker carries tag.
func (v ConsumerStateView) HasAffinity(tag string) bool { return slices.Contains(v.Tags, tag) }

// Worker is a worker visible to one routing decision.
type Worker struct {
	// Participant is the transport's handle on the worker process. The engine
	// never looks inside; it hands it from the [WorkerPool] snapshot to
	// [Conversation.Link], so a conversation links the exact process the
	// router saw even if the pool has changed since.
	Participant any
	// State is the load and tags the router sees, and the worker's
	// identity: State.ID.
	State ConsumerStateView
}

// ID returns the worker's stable identity, which routers choose and the
// journal records: State.ID, its one source.
func (w Worker) ID() string { return w.State.ID }
