package main

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{7}, 7},
		{[]float64{3, 1}, 2},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{9, 9, 1, 9, 1}, 9},
		{[]float64{1000, 1, 2}, 2}, // an outlier batch does not move it
	} {
		in := append([]float64(nil), tc.xs...)
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
		if fmt.Sprint(in) != fmt.Sprint(tc.xs) {
			t.Errorf("median changed its input: %v, was %v", tc.xs, in)
		}
	}
}

// TestPercentile checks the nearest rank of percentile (shared with
// submit) for the quantiles bench prints.
func TestPercentile(t *testing.T) {
	ns := func(n int) []time.Duration { // 1ns, 2ns, ..., n ns
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i + 1)
		}
		return out
	}
	for _, tc := range []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{ns(1), 0.50, 1},
		{ns(1), 0.99, 1},
		{ns(2), 0.50, 1},
		{ns(2), 0.99, 2},
		{ns(3), 0.50, 2},
		{ns(4), 0.50, 2},
		{ns(10), 0.50, 5},
		{ns(10), 0.99, 10},
		{ns(100), 0.50, 50},
		{ns(100), 0.99, 99},
		{ns(1000), 0.99, 990},
		{ns(1001), 0.99, 991},
		{ns(100), 1, 100},
		{[]time.Duration{1, 1, 1, 50}, 0.99, 50},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("percentile(%d values, %v) = %v, want %v", len(tc.sorted), tc.p, got, tc.want)
		}
	}
}

func TestMostChosen(t *testing.T) {
	for _, tc := range []struct {
		counts map[string]int
		want   string
	}{
		{nil, ""},
		{map[string]int{"a": 1}, "a"},
		{map[string]int{"a": 1, "b": 2}, "b"},
		{map[string]int{"c": 2, "b": 2, "a": 1}, "b"}, // a tie: the first id
	} {
		if got := mostChosen(tc.counts); got != tc.want {
			t.Errorf("mostChosen(%v) = %q, want %q", tc.counts, got, tc.want)
		}
	}
}

func TestSyntheticCandidates(t *testing.T) {
	cs := syntheticCandidates(1000)
	if cs[0].ID != "w0001" || cs[999].ID != "w1000" {
		t.Errorf("ids %s…%s, want w0001…w1000", cs[0].ID, cs[999].ID)
	}
	if got := syntheticCandidates(3); got[0].ID != "w001" || got[2].ID != "w003" {
		t.Errorf("ids %s…%s, want w001…w003", got[0].ID, got[2].ID)
	}
	tagged, loads := 0, map[int]bool{}
	for _, c := range cs {
		if !c.HasCapacity() {
			t.Errorf("%s is full: %+v", c.ID, c)
		}
		if len(c.Tags) > 0 {
			tagged++
		}
		loads[c.InFlight] = true
	}
	if tagged != 250 || len(loads) < 4 {
		t.Errorf("%d tagged (want 250), %d distinct in_flight (want several)", tagged, len(loads))
	}
	// The same on every run: the first four, as the usage says.
	want := "[{w001 3 4 1 [] map[] 0.01 0.015 0.05 0} {w002 6 8 2 [] map[] 0.015 0.0225 0.1 0} {w003 5 16 0 [] map[] 0.02 0.03 0.15 0} " +
		"{w004 0 4 1 [fast] map[] 0.025 0.0375 0.2 0}]"
	if got := fmt.Sprint(syntheticCandidates(4)); got != want {
		t.Errorf("syntheticCandidates(4) = %s, want %s", got, want)
	}
}

// TestBenchmarkCounts checks benchmark's bookkeeping: every call counted
// once, the inputs taken in turn, at least one batch, and the first error
// returned.
func TestBenchmarkCounts(t *testing.T) {
	calls := 0
	st, err := benchmark(context.Background(), time.Millisecond, func(_ context.Context, i int) error {
		if i != calls {
			t.Fatalf("call %d given i = %d", calls, i)
		}
		calls++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.decisions != calls || st.batches < 1 || st.decisions < st.batches || st.p99 < st.p50 || st.allocsPerOp < 0 {
		t.Errorf("stats %+v after %d calls", st, calls)
	}
	boom := errors.New("boom")
	_, err = benchmark(context.Background(), time.Hour, func(_ context.Context, i int) error {
		if i == 5 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := benchmark(ctx, time.Hour, func(context.Context, int) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v with ctx done, want context.Canceled", err)
	}
}
