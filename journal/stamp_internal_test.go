package journal

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestStampMatchesAppendFormat checks the cached formatter against
// time.RFC3339Nano, in sequences that stay within a second, cross one, and
// jump around, with nanoseconds that have trailing zeros and none.
func TestStampMatchesAppendFormat(t *testing.T) {
	base := time.Date(2026, 11, 26, 23, 59, 59, 0, time.UTC)
	times := []time.Time{
		base, base.Add(1), base.Add(10), base.Add(500 * time.Millisecond), base.Add(999_999_999),
		base.Add(time.Second), base.Add(time.Second + 120*time.Microsecond), base, // back again
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 5, time.UTC), // before the epoch: Unix() is negative
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 7, time.UTC),
		time.Date(2026, 3, 29, 2, 30, 0, 100, time.FixedZone("X", 5*3600+1800)), // not UTC
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		times = append(times, base.Add(time.Duration(r.Int64N(int64(3*time.Second)))))
	}
	var s stamp
	for _, tm := range times {
		got := string(s.append([]byte("x"), tm))
		want := "x" + tm.UTC().Format(time.RFC3339Nano)
		if got != want {
			t.Fatalf("%v: got %s, want %s", tm, got, want)
		}
	}
}
