// Package pick is the reference semantics of the routing helpers: least
// loaded, with tag, rendezvous hashing, power of two choices and the
// decision's seeded random source. The router's exported helpers, its
// native policies and both script runtimes call these very functions, so a
// policy gives the same answer in every language. Each choosing function
// returns an index into its list, or -1 when the list is empty.
package pick

import (
	"hash/fnv"
	"math/rand/v2"
	"slices"

	"github.com/aion-dispatch/dispatch/engine"
)

// LeastLoaded returns the candidate with the lowest load, where load is
// (in_flight + buffer_depth) / max_in_flight (a max below 1 counts as 1); ties
// go to the earliest candidate.
func LeastLoaded(cands []engine.ConsumerStateView) int {
	return leastLoadedViews(cands, "", false)
}

// LeastLoadedWithTag is LeastLoaded over the candidates that carry
// tag: the same answer as LeastLoaded(WithTag(cands, tag)), mapped back
// to an index into cands, without building the filtered list.
func LeastLoadedWithTag(cands []engine.ConsumerStateView, tag string) int {
	return leastLoadedViews(cands, tag, true)
}

// leastLoadedViews and LeastLoadedWorkers are the one loop over the two
// shapes a list comes in, so that the selection's workers are read in place
// rather than copied into views first; with byTag, only carriers of tag count.
func leastLoadedViews(cands []engine.ConsumerStateView, tag string, byTag bool) int {
	best := -1
	for i := range cands {
		if (!byTag || slices.Contains(cands[i].Tags, tag)) && (best < 0 || LessLoaded(&cands[i], &cands[best])) {
			best = i
		}
	}
	return best
}

// LeastLoadedWorkers is LeastLoaded, or LeastLoadedWithTag when byTag is
// set, over a selection's workers, read in place.
func LeastLoadedWorkers(ws []engine.Worker, tag string, byTag bool) int {
	best := -1
	for i := range ws {
		// The views are read in place: a value receiver or argument would
		// copy each one, which costs as much as the comparison.
		if (!byTag || slices.Contains(ws[i].State.Tags, tag)) && (best < 0 || LessLoaded(&ws[i].State, &ws[best].State)) {
			best = i
		}
	}
	return best
}

// WithTag returns the candidates that carry tag, in order. The result is a
// new slice; cands is not modified.
func WithTag(cands []engine.ConsumerStateView, tag string) []engine.ConsumerStateView {
	n := 0
	for i := range cands {
		if slices.Contains(cands[i].Tags, tag) {
			n++
		}
	}
	out := make([]engine.ConsumerStateView, 0, n)
	for i := range cands {
		if slices.Contains(cands[i].Tags, tag) {
			out = append(out, cands[i])
		}
	}
	return out
}

// Rendezvous returns the candidate with the highest rendezvous
// (highest-random-weight) score for key: the same key keeps going to the same
// worker while it is a candidate, and when it leaves only its keys move.
// Ties, which need a 64-bit hash collision, go to the earliest candidate.
func Rendezvous(cands []engine.ConsumerStateView, key string) int {
	best, bestScore := -1, uint64(0)
	for i := range cands {
		s := rendezvousScore(key, cands[i].ID)
		if best < 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	return best
}

func rendezvousScore(key, id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return mix64(h.Sum64())
}

// mix64 is the splitmix64 finaliser: it spreads FNV's weak low bits.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// P2C draws two distinct candidates with rng and returns the less loaded
// (as in LeastLoaded), the first drawn on a tie. With one candidate it
// returns it without drawing.
func P2C(cands []engine.ConsumerStateView, rng *rand.Rand) int {
	switch len(cands) {
	case 0:
		return -1
	case 1:
		return 0
	}
	a, b := drawTwo(len(cands), rng)
	if LessLoaded(&cands[b], &cands[a]) {
		return b
	}
	return a
}

// drawTwo draws two distinct indexes below n (n >= 2) with rng: the
// draws of P2C and P2CEWMA, the same for the same source.
func drawTwo(n int, rng *rand.Rand) (a, b int) {
	a = rng.IntN(n)
	b = rng.IntN(n - 1)
	if b >= a {
		b++
	}
	return a, b
}

// NewRand returns the random source of one routing decision, seeded from the
// conversation id and the attempt, so that replaying the decision draws the
// same numbers.
func NewRand(conversationID string, attempt int) *rand.Rand {
	return rand.New(rand.NewPCG(randSeed(conversationID, attempt)))
}

// Seed re-seeds pcg as the random source of the decision of conversationID
// at attempt, as NewRand seeds a new one.
func Seed(pcg *rand.PCG, conversationID string, attempt int) {
	pcg.Seed(randSeed(conversationID, attempt))
}

func randSeed(conversationID string, attempt int) (uint64, uint64) {
	h := fnv.New64a()
	h.Write([]byte(conversationID))
	return mix64(h.Sum64()), uint64(attempt)
}

// LessLoaded reports whether a's load is strictly below b's, comparing the
// ratios (in_flight+buffer_depth)/max_in_flight without division. A
// max_in_flight below 1 counts as 1.
func LessLoaded(a, b *engine.ConsumerStateView) bool {
	la, lb := int64(a.InFlight+a.BufferDepth), int64(b.InFlight+b.BufferDepth)
	return la*int64(max(b.MaxInFlight, 1)) < lb*int64(max(a.MaxInFlight, 1))
}

// P2CEWMA is power of two choices scored by Finagle's cost: it draws two
// distinct candidates with rng exactly as P2C does (the same draws, the
// same one-candidate shortcut) and returns the one with the lower cost
// peak × (in_flight + 1), where peak is the candidate's LatencyPeakEWMA.
// A candidate nothing was observed of yet (LatencyPeakEWMA 0) counts at
// the neutral value, NeutralPeak(cands): neither penalised nor favoured
// for being new. On equal costs the less loaded (LessLoaded) wins, then the
// first drawn.
func P2CEWMA(cands []engine.ConsumerStateView, rng *rand.Rand) int {
	switch len(cands) {
	case 0:
		return -1
	case 1:
		return 0
	}
	a, b := drawTwo(len(cands), rng)
	pa, pb := cands[a].LatencyPeakEWMA, cands[b].LatencyPeakEWMA
	if pa == 0 || pb == 0 { // the neutral value is needed only then
		n := NeutralPeak(cands)
		if pa == 0 {
			pa = n
		}
		if pb == 0 {
			pb = n
		}
	}
	ca := pa * float64(cands[a].InFlight+1)
	cb := pb * float64(cands[b].InFlight+1)
	if cb < ca || cb == ca && LessLoaded(&cands[b], &cands[a]) {
		return b
	}
	return a
}

// NeutralPeak is the LatencyPeakEWMA a candidate nothing was observed of
// counts at in P2CEWMA: the mean of the candidates' LatencyPeakEWMA over
// those that have one (above 0), or 1 when none has, so that P2CEWMA
// then compares in_flight alone.
func NeutralPeak(cands []engine.ConsumerStateView) float64 {
	return neutral(cands, func(v *engine.ConsumerStateView) float64 { return v.LatencyPeakEWMA })
}

// NeutralLatency is the LatencyEWMA a candidate nothing was observed of
// counts at in LeastLatency: the mean of the candidates' LatencyEWMA over
// those that have one (above 0), or 1 when none has.
func NeutralLatency(cands []engine.ConsumerStateView) float64 {
	return neutral(cands, func(v *engine.ConsumerStateView) float64 { return v.LatencyEWMA })
}

func neutral(cands []engine.ConsumerStateView, fig func(*engine.ConsumerStateView) float64) float64 {
	sum, n := 0.0, 0
	for i := range cands {
		if x := fig(&cands[i]); x > 0 {
			sum += x
			n++
		}
	}
	if n == 0 {
		return 1
	}
	return sum / float64(n)
}

// LeastLatency returns the candidate with the lowest LatencyEWMA, a
// candidate nothing was observed of (0) counting at NeutralLatency(cands);
// ties go to the less loaded (LessLoaded), then to the earliest.
func LeastLatency(cands []engine.ConsumerStateView) int {
	neutral := 0.0
	for i := range cands {
		if cands[i].LatencyEWMA == 0 { // the neutral value is needed only then
			neutral = NeutralLatency(cands)
			break
		}
	}
	best, bestLat := -1, 0.0
	for i := range cands {
		lat := cands[i].LatencyEWMA
		if lat == 0 {
			lat = neutral
		}
		if best < 0 || lat < bestLat || lat == bestLat && LessLoaded(&cands[i], &cands[best]) {
			best, bestLat = i, lat
		}
	}
	return best
}

// LeastLatencyWorkers is LeastLatency over a selection's workers, read in
// place. (The two loops are written out: a generic one over an accessor
// was twice as slow over views.)
func LeastLatencyWorkers(ws []engine.Worker) int {
	neutral, sum, observed := 0.0, 0.0, 0
	for i := range ws {
		if lat := ws[i].State.LatencyEWMA; lat > 0 {
			sum += lat
			observed++
		}
	}
	if observed > 0 {
		neutral = sum / float64(observed)
	}
	best, bestLat := -1, 0.0
	for i := range ws {
		lat := ws[i].State.LatencyEWMA
		if lat == 0 {
			lat = neutral
		}
		if best < 0 || lat < bestLat || lat == bestLat && LessLoaded(&ws[i].State, &ws[best].State) {
			best, bestLat = i, lat
		}
	}
	return best
}

// Healthy returns the candidates whose ErrorRate is at most maxErrorRate,
// in order: cands itself when none is dropped, else a new slice (cands is
// not modified). A maxErrorRate that is NaN keeps none.
func Healthy(cands []engine.ConsumerStateView, maxErrorRate float64) []engine.ConsumerStateView {
	n := 0
	for i := range cands {
		if cands[i].ErrorRate <= maxErrorRate {
			n++
		}
	}
	if n == len(cands) {
		return cands
	}
	out := make([]engine.ConsumerStateView, 0, n)
	for i := range cands {
		if cands[i].ErrorRate <= maxErrorRate {
			out = append(out, cands[i])
		}
	}
	return out
}
