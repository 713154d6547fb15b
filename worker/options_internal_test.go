package worker

import (
	"strings"
	"testing"
)

// TestOptionsCheckLabels: a worker's labels are checked as a node checks
// them in its registration.
func TestOptionsCheckLabels(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		err    string
	}{
		{"none", nil, ""},
		{"good", map[string]string{"region": "eu"}, ""},
		{"empty key", map[string]string{"": "eu"}, "worker w1: label key must be non-empty"},
		{"spaced value", map[string]string{"region": "eu "}, "without surrounding spaces"},
		{"long value", map[string]string{"region": strings.Repeat("v", 256)}, "the limit is 255"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{ID: "w1", Channels: []string{"prod/email"}, Labels: tc.labels}
			err := o.check()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("check: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("check: %v, want an error with %q", err, tc.err)
			}
		})
	}
}
