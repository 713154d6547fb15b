//go:build !race

package exprfast_test

const raceEnabled = false
