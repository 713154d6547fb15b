package engine

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A start-to-close timeout stays the reported cause even when a later
// deadline (schedule-to-close, or the caller's) has also passed by the time
// the dispatcher looks.
func TestStoppedKeepsTheTimeoutThatFired(t *testing.T) {
	past := time.Now().Add(-time.Second)
	expired, cancel := context.WithDeadline(context.Background(), past)
	defer cancel()
	startToClose := &TimeoutError{Timeout: ErrStartToCloseTimeout, After: 20 * time.Millisecond}
	for name, caller := range map[string]context.Context{
		"schedule-to-close expired too": context.Background(),
		"caller deadline expired too":   expired,
	} {
		t.Run(name, func(t *testing.T) {
			c := &call{d: &Dispatcher{}, caller: caller, req: ActivityRequest{ScheduleToClose: 25 * time.Millisecond}, worker: "w1"}
			err := c.stopped(expired, startToClose)
			if !errors.Is(err, ErrStartToCloseTimeout) || errors.Is(err, ErrScheduleToCloseTimeout) {
				t.Errorf("stopped = %v, want the start-to-close timeout", err)
			}
		})
	}
	// Without a timeout error, an ended context reports why it ended.
	c := &call{d: &Dispatcher{}, caller: context.Background(), req: ActivityRequest{ScheduleToClose: time.Second}}
	if err := c.stopped(expired, context.DeadlineExceeded); !errors.Is(err, ErrScheduleToCloseTimeout) {
		t.Errorf("stopped = %v, want schedule-to-close", err)
	}
}
