package pick

import (
	"math"
	"slices"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
)

// v is a view with the figures the observed helpers read.
func v(id string, inFlight int, lat, peak, errRate float64) engine.ConsumerStateView {
	return engine.ConsumerStateView{ID: id, InFlight: inFlight, MaxInFlight: 4, LatencyEWMA: lat, LatencyPeakEWMA: peak, ErrorRate: errRate}
}

// drawn returns the two indices P2C and P2CEWMA draw with a source seeded
// as pick.NewRand(conv, 1).
func drawn(n int, conv string) (int, int) {
	rng := NewRand(conv, 1)
	a := rng.IntN(n)
	b := rng.IntN(n - 1)
	if b >= a {
		b++
	}
	return a, b
}

func TestP2CEWMA(t *testing.T) {
	// With two candidates both are drawn; the seed decides the order,
	// which matters only for the last tie-break.
	for _, tc := range []struct {
		name  string
		cands []engine.ConsumerStateView
		want  string // "" for -1; "first" for the first drawn
	}{
		{"none", nil, ""},
		{"one", []engine.ConsumerStateView{v("a", 9, 0, 5, 1)}, "a"},
		{"faster wins at equal load", []engine.ConsumerStateView{v("slow", 1, 0, 0.020, 0), v("fast", 1, 0, 0.002, 0)}, "fast"},
		{"cost counts in_flight+1", []engine.ConsumerStateView{v("slow-idle", 0, 0, 0.020, 0), v("fast-busy", 3, 0, 0.004, 0)}, "fast-busy"},            // 0.020 vs 0.016
		{"cost counts in_flight+1, other way", []engine.ConsumerStateView{v("slow-idle", 0, 0, 0.020, 0), v("fast-busy", 5, 0, 0.004, 0)}, "slow-idle"}, // 0.020 vs 0.024
		{"nothing observed: fewest in flight", []engine.ConsumerStateView{v("a", 2, 0, 0, 0), v("b", 1, 0, 0, 0)}, "b"},
		// New beside 0.010: counts at the mean of the others (0.010): 0.010*3 vs 0.010*2.
		{"new counts at the neutral mean", []engine.ConsumerStateView{v("new", 1, 0, 0, 0), v("old", 2, 0, 0.010, 0)}, "new"},
		{"new counts at the neutral mean, busier", []engine.ConsumerStateView{v("new", 3, 0, 0, 0), v("old", 2, 0, 0.010, 0)}, "old"},
		// Equal cost (0.010*2 vs 0.020*1): the less loaded by LessLoaded wins.
		{"tie: less loaded", []engine.ConsumerStateView{
			{ID: "a", InFlight: 1, MaxInFlight: 4, BufferDepth: 1, LatencyPeakEWMA: 0.010},
			{ID: "b", InFlight: 0, MaxInFlight: 1, BufferDepth: 0, LatencyPeakEWMA: 0.020},
		}, "b"},
		{"tie: first drawn", []engine.ConsumerStateView{v("a", 1, 0, 0.010, 0), v("b", 1, 0, 0.010, 0)}, "first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, conv := range []string{"c1", "c2", "c3", "c4"} {
				got := P2CEWMA(tc.cands, NewRand(conv, 1))
				want := -1
				switch tc.want {
				case "":
				case "first":
					want, _ = drawn(len(tc.cands), conv)
				default:
					want = slices.IndexFunc(tc.cands, func(c engine.ConsumerStateView) bool { return c.ID == tc.want })
				}
				if got != want {
					t.Errorf("%s: P2CEWMA = %d, want %d", conv, got, want)
				}
			}
		})
	}
}

// TestP2CEWMADrawsAsP2C: the same seed draws the same two candidates as
// P2C, and the neutral value is the mean over all the candidates, not the
// two drawn.
func TestP2CEWMADrawsAsP2C(t *testing.T) {
	cands := make([]engine.ConsumerStateView, 10)
	for i := range cands {
		cands[i] = v(string(rune('a'+i)), i%3, 0, 0, 0)
	}
	for _, conv := range []string{"x", "y", "z", "w", "q"} {
		a, b := drawn(len(cands), conv)
		if got := P2CEWMA(cands, NewRand(conv, 1)); got != a && got != b {
			t.Errorf("%s: chose %d, not one of the drawn %d, %d", conv, got, a, b)
		}
		// Nothing observed: it is P2C.
		if got, want := P2CEWMA(cands, NewRand(conv, 1)), P2C(cands, NewRand(conv, 1)); got != want {
			t.Errorf("%s: with nothing observed P2CEWMA = %d, P2C = %d", conv, got, want)
		}
		// The drawn a has a peak of 0.010 and b none; a third, undrawn,
		// has 0.050, so the neutral mean is 0.030: with equal in_flight, a
		// wins; were the mean over the drawn only (0.010), the tie would
		// go by load.
		c := slices.Clone(cands)
		for i := range c {
			c[i].InFlight = 1
		}
		c[b].MaxInFlight = 8 // b is the less loaded: it would win a tie
		c[a].LatencyPeakEWMA = 0.010
		other := 0
		for other == a || other == b {
			other++
		}
		c[other].LatencyPeakEWMA = 0.050
		if got := P2CEWMA(c, NewRand(conv, 1)); got != a {
			t.Errorf("%s: chose %d, want %d (the neutral mean is over every candidate)", conv, got, a)
		}
	}
}

func TestNeutral(t *testing.T) {
	for _, tc := range []struct {
		cands     []engine.ConsumerStateView
		peak, lat float64
	}{
		{nil, 1, 1},
		{[]engine.ConsumerStateView{v("a", 0, 0, 0, 0)}, 1, 1},
		{[]engine.ConsumerStateView{v("a", 0, 0.2, 0.1, 0), v("b", 0, 0, 0, 0), v("c", 0, 0.4, 0.3, 0)}, 0.2, 0.30000000000000004},
	} {
		if got := NeutralPeak(tc.cands); got != tc.peak {
			t.Errorf("NeutralPeak(%v) = %v, want %v", tc.cands, got, tc.peak)
		}
		if got := NeutralLatency(tc.cands); got != tc.lat {
			t.Errorf("NeutralLatency(%v) = %v, want %v", tc.cands, got, tc.lat)
		}
	}
}

func TestLeastLatency(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cands []engine.ConsumerStateView
		want  int
	}{
		{"none", nil, -1},
		{"one", []engine.ConsumerStateView{v("a", 3, 0.5, 0, 0)}, 0},
		{"lowest", []engine.ConsumerStateView{v("a", 0, 0.020, 0, 0), v("b", 3, 0.002, 0, 0), v("c", 0, 0.010, 0, 0)}, 1},
		// b is new: it counts at the mean of a and c (0.015), above c.
		{"new counts at the mean", []engine.ConsumerStateView{v("a", 0, 0.020, 0, 0), v("b", 0, 0, 0, 0), v("c", 0, 0.010, 0, 0)}, 2},
		// b is new: the mean of a and c (0.010) ties with them; b is the less loaded.
		{"new ties at the mean, less loaded", []engine.ConsumerStateView{v("a", 2, 0.010, 0, 0), v("b", 1, 0, 0, 0), v("c", 2, 0.010, 0, 0)}, 1},
		{"nothing observed: least loaded", []engine.ConsumerStateView{v("a", 2, 0, 0, 0), v("b", 1, 0, 0, 0), v("c", 1, 0, 0, 0)}, 1},
		{"tie: less loaded", []engine.ConsumerStateView{v("a", 2, 0.010, 0, 0), v("b", 1, 0.010, 0, 0)}, 1},
		{"tie: earliest", []engine.ConsumerStateView{v("a", 1, 0.010, 0, 0), v("b", 1, 0.010, 0, 0)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := LeastLatency(tc.cands); got != tc.want {
				t.Errorf("LeastLatency = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestHealthy(t *testing.T) {
	cands := []engine.ConsumerStateView{v("a", 0, 0, 0, 0), v("b", 0, 0, 0, 0.5), v("c", 0, 0, 0, 0.25), v("d", 0, 0, 0, 1)}
	ids := func(vs []engine.ConsumerStateView) []string {
		var out []string
		for _, c := range vs {
			out = append(out, c.ID)
		}
		return out
	}
	for _, tc := range []struct {
		max  float64
		want []string
	}{
		{0.25, []string{"a", "c"}}, // at the limit stays
		{0, []string{"a"}},
		{0.5, []string{"a", "b", "c"}},
		{1, []string{"a", "b", "c", "d"}},
		{-1, nil},
		{math.NaN(), nil},
	} {
		if got := ids(Healthy(cands, tc.max)); !slices.Equal(got, tc.want) {
			t.Errorf("Healthy(%v) = %v, want %v", tc.max, got, tc.want)
		}
	}
	if got := Healthy(nil, 0.5); len(got) != 0 {
		t.Errorf("Healthy(nil) = %v", got)
	}
	before := slices.Clone(cands)
	Healthy(cands, 0.3)
	if !slices.EqualFunc(before, cands, func(a, b engine.ConsumerStateView) bool { return a.ID == b.ID }) {
		t.Errorf("Healthy changed its argument")
	}
}

// TestLeastLatencyWorkers: the in-place loop over workers chooses as the
// one over views.
func TestLeastLatencyWorkers(t *testing.T) {
	lats := []float64{0, 0.001, 0.002, 0.002, 0.5}
	rng := NewRand("workers", 1)
	for range 500 {
		n := rng.IntN(8)
		ws := make([]engine.Worker, n)
		vs := make([]engine.ConsumerStateView, n)
		for i := range ws {
			ws[i].State = engine.ConsumerStateView{ID: string(rune('a' + i)), InFlight: rng.IntN(3), MaxInFlight: 1 + rng.IntN(3),
				LatencyEWMA: lats[rng.IntN(len(lats))]}
			vs[i] = ws[i].State
		}
		if got, want := LeastLatencyWorkers(ws), LeastLatency(vs); got != want {
			t.Fatalf("LeastLatencyWorkers = %d, LeastLatency = %d, on %v", got, want, vs)
		}
	}
}
