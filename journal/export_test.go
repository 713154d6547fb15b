package journal

// DurationsBuckets is how many buckets d holds: its memory.
func DurationsBuckets(d *Durations) int { return len(d.buckets) }

// ParseLine reads one journal line.
var ParseLine = parseLine
