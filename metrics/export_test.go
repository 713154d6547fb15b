package metrics

import "time"

// SetClock makes m time script calls with now.
func SetClock(m *Metrics, now func() time.Time) { m.now = now }
