package journal

import (
	"math/bits"
	"slices"
	"time"
)

// Durations is a distribution of durations, such as the waits of a
// channel's activities in its backlog, kept in memory that does not grow
// with their number: each is counted in a bucket of the values that agree
// in their 8 leading bits (at most 1/128 apart; values under 256ns each
// have a bucket of their own), which keeps the smallest and largest it
// got. So a few hundred buckets cover each power of two, and a journal of
// any length sums up its waits in a bounded summary. The zero value is
// empty and ready to use.
type Durations struct {
	n       int
	buckets map[uint16]durationBucket
}

type durationBucket struct {
	n        int
	min, max time.Duration
}

// bucketOf is the bucket of v >= 0: v itself under 256, else the place of
// its leading bit and the 8 bits from it.
func bucketOf(v time.Duration) uint16 {
	u := uint64(v)
	if u < 256 {
		return uint16(u)
	}
	shift := bits.Len64(u) - 8
	return uint16(shift)<<8 | uint16(u>>shift)
}

// Add counts v; a negative duration (which a journal should not have)
// counts as 0.
func (d *Durations) Add(v time.Duration) {
	v = max(v, 0)
	if d.buckets == nil {
		d.buckets = make(map[uint16]durationBucket)
	}
	k := bucketOf(v)
	b, ok := d.buckets[k]
	if !ok {
		b.min, b.max = v, v
	}
	b.n++
	b.min, b.max = min(b.min, v), max(b.max, v)
	d.buckets[k] = b
	d.n++
}

// Count returns how many durations were added.
func (d *Durations) Count() int { return d.n }

// Quantile returns the q-quantile (0 <= q <= 1) of the durations, by
// nearest rank (Quantile(0.5) is the median, Quantile(0.99) the 99th
// percentile), or 0 when there are none. It is one of the durations
// added when it is the smallest or the largest of its bucket, as it is
// when the durations are apart; otherwise it is the largest of its
// bucket: at most 1/128 above the exact one.
func (d *Durations) Quantile(q float64) time.Duration {
	if d.n == 0 {
		return 0
	}
	rank := min(max(int(q*float64(d.n)+0.5), 1), d.n) // 1-based
	keys := make([]uint16, 0, len(d.buckets))
	for k := range d.buckets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	seen := 0
	for _, k := range keys {
		b := d.buckets[k]
		if rank <= seen+b.n {
			if rank == seen+1 {
				return b.min
			}
			return b.max
		}
		seen += b.n
	}
	return 0 // not reached: the buckets hold d.n durations
}
