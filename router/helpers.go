package router

import (
	"math/rand/v2"

	"github.com/aion-dispatch/dispatch/engine"
	"github.com/aion-dispatch/dispatch/router/internal/pick"
)

// The helpers below are the reference semantics of the routing helpers that
// Lua scripts call as dispatch.least_loaded, dispatch.with_tag,
// dispatch.rendezvous, dispatch.p2c, dispatch.p2c_ewma, dispatch.least_latency,
// dispatch.healthy and dispatch.random, and expr scripts as leastLoaded,
// withTag, rendezvous, p2c, p2cEwma, leastLatency, healthy and random. The scripted versions call
// these very functions (package router/internal/pick), so a policy gives the
// same answer in every language. Each choosing helper returns an index into
// cands, or -1 when cands is empty.

// LeastLoadedIndex returns the candidate with the lowest load, where load is
// (in_flight + buffer_depth) / max_in_flight (a max below 1 counts as 1); ties
// go to the earliest candidate.
func LeastLoadedIndex(cands []engine.ConsumerStateView) int { return pick.LeastLoaded(cands) }

// LeastLoadedWithTagIndex is LeastLoadedIndex over the candidates that carry
// tag: the same answer as LeastLoadedIndex(WithTag(cands, tag)), mapped back
// to an index into cands, without building the filtered list.
func LeastLoadedWithTagIndex(cands []engine.ConsumerStateView, tag string) int {
	return pick.LeastLoadedWithTag(cands, tag)
}

// WithTag returns the candidates that carry tag, in order. The result is a
// new slice; cands is not modified.
func WithTag(cands []engine.ConsumerStateView, tag string) []engine.ConsumerStateView {
	return pick.WithTag(cands, tag)
}

// RendezvousIndex returns the candidate with the highest rendezvous
// (highest-random-weight) score for key: the same key keeps going to the same
// worker while it is a candidate, and when it leaves only its keys move.
// Ties, which need a 64-bit hash collision, go to the earliest candidate.
func RendezvousIndex(cands []engine.ConsumerStateView, key string) int {
	return pick.Rendezvous(cands, key)
}

// P2CIndex draws two distinct candidates with rng and returns the less loaded
// (as in LeastLoadedIndex), the first drawn on a tie. With one candidate it
// returns it without drawing.
func P2CIndex(cands []engine.ConsumerStateView, rng *rand.Rand) int { return pick.P2C(cands, rng) }

// P2CEWMAIndex draws two distinct candidates with rng as P2CIndex does and
// returns the one with the lower cost LatencyPeakEWMA × (InFlight + 1),
// Finagle's; a candidate nothing was observed of (0) counts at the mean
// LatencyPeakEWMA of the candidates that have one (1 if none has). Equal
// costs go to the less loaded, then to the first drawn.
func P2CEWMAIndex(cands []engine.ConsumerStateView, rng *rand.Rand) int {
	return pick.P2CEWMA(cands, rng)
}

// LeastLatencyIndex returns the candidate with the lowest LatencyEWMA; a
// candidate nothing was observed of (0) counts at the mean LatencyEWMA of
// the candidates that have one. Ties go to the less loaded, then to the
// earliest.
func LeastLatencyIndex(cands []engine.ConsumerStateView) int { return pick.LeastLatency(cands) }

// Healthy returns the candidates whose ErrorRate is at most maxErrorRate,
// in order: cands itself when none is dropped, else a new slice.
func Healthy(cands []engine.ConsumerStateView, maxErrorRate float64) []engine.ConsumerStateView {
	return pick.Healthy(cands, maxErrorRate)
}

// NewRand returns the random source of one routing decision, seeded from the
// conversation id and the attempt, so that replaying the decision draws the
// same numbers.
func NewRand(conversationID string, attempt int) *rand.Rand {
	return pick.NewRand(conversationID, attempt)
}
