//go:build !race

package luafast_test

const raceEnabled = false
