package exprfast_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aion-dispatch/dispatch/router/internal/call"
)

// directCases are the scripts that run without a frame, and scripts of
// nearly their shape that must not.
var directCases = []struct {
	src    string
	direct bool
}{
	{`leastLoaded(candidates)`, true},
	{`leastLoaded(candidates, "gpu")`, true},
	{`leastLatency(candidates)`, true},
	{`leastLoaded(candidates, "gpu") ?? leastLoaded(candidates)`, true},
	{`leastLoaded(candidates, "canary") ?? leastLoaded(candidates, "gpu") ?? leastLatency(candidates)`, true},
	{`(leastLoaded(candidates, "w1") ?? leastLoaded(candidates, "")) ?? leastLoaded(candidates, "eu")`, true},
	{`leastLoaded(candidates, "gpu") ?? "w1"`, false},
	{`leastLoaded(candidates, request.workflow_id)`, false},
	{`leastLoaded(withTag(candidates, "gpu"))`, false},
	{`let candidates = withTag(candidates, "gpu"); leastLoaded(candidates)`, false},
	{`leastLoaded(candidates) ?? nil`, false},
	{`p2c(candidates)`, false},
	{`leastLoaded(candidates).x ?? leastLoaded(candidates)`, false},
}

// TestDirect: a direct program runs without a frame and answers as the
// same program run in a frame, and as the VM.
func TestDirect(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	ctx := context.Background()
	for _, tc := range directCases {
		p := compilePair(t, tc.src)
		if p == nil || p.fast == nil {
			if tc.direct {
				t.Errorf("%s: not on the fast path", tc.src)
			}
			continue
		}
		if p.fast.Direct() != tc.direct {
			t.Errorf("%s: direct %v, want %v", tc.src, p.fast.Direct(), tc.direct)
		}
		framed := p.fast.Framed()
		for range 300 {
			sel := randomSelection(r)
			p.check(t, sel)
			got, gotErr := p.fast.Run(ctx, sel, time.Time{})
			want, wantErr := framed.Run(ctx, sel, time.Time{})
			if got != want || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Fatalf("%s\non %s:\nas run: %+v, %v\nframed: %+v, %v", tc.src, describe(sel), got, gotErr, want, wantErr)
			}
		}
	}
}

// TestDirectStops: a direct call whose context ended, or whose deadline
// passed, fails as a framed one does.
func TestDirectStops(t *testing.T) {
	p := compilePair(t, `leastLoaded(candidates, "gpu") ?? leastLoaded(candidates)`)
	if p == nil || p.fast == nil || !p.fast.Direct() {
		t.Fatal("not direct")
	}
	sel := gpuSelection(16)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.fast.Run(canceled, sel, time.Time{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v, want %v", err, context.Canceled)
	}
	if _, err := p.fast.Framed().Run(canceled, sel, time.Time{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled, framed: %v, want %v", err, context.Canceled)
	}
	past := time.Now().Add(-time.Millisecond)
	if _, err := p.fast.Run(context.Background(), sel, past); !errors.Is(err, call.ErrTimeout) {
		t.Errorf("past its deadline: %v, want %v", err, call.ErrTimeout)
	}
	if _, err := p.fast.Framed().Run(context.Background(), sel, past); !errors.Is(err, call.ErrTimeout) {
		t.Errorf("past its deadline, framed: %v, want %v", err, call.ErrTimeout)
	}
	if res, err := p.fast.Run(context.Background(), sel, time.Now().Add(time.Minute)); err != nil || res.ID == "" {
		t.Errorf("in time: %+v, %v", res, err)
	}
}
