//go:build race

package exprfast_test

// raceEnabled: the race detector makes sync.Pool drop items, so pooled
// frames are made again now and then.
const raceEnabled = true
