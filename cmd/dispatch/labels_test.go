package main

import (
	"fmt"
	"maps"
	"strings"
	"testing"
)

// TestLabelFlags: --label takes KEY=VALUE, each key once, as
// engine.CheckLabel allows it.
func TestLabelFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want map[string]string
		err  string
	}{
		{"none", nil, nil, ""},
		{"two", []string{"region=eu", "gpu=a100"}, map[string]string{"region": "eu", "gpu": "a100"}, ""},
		{"empty value", []string{"spare="}, map[string]string{"spare": ""}, ""},
		{"value with =", []string{"expr=a=b"}, map[string]string{"expr": "a=b"}, ""},
		{"no =", []string{"region"}, nil, `"region": want KEY=VALUE`},
		{"empty key", []string{"=eu"}, nil, "label key must be non-empty"},
		{"spaced value", []string{"region= eu"}, nil, "without surrounding spaces"},
		{"twice", []string{"region=eu", "region=us"}, nil, "label region given twice"},
		{"long key", []string{strings.Repeat("k", 64) + "=v"}, nil, "the limit is 63"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l labelFlags
			var err error
			for _, a := range tc.args {
				if err = l.Set(a); err != nil {
					break
				}
			}
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("Set: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("Set: %v, want an error with %q", err, tc.err)
			case tc.err == "" && !maps.Equal(l, labelFlags(tc.want)):
				t.Fatalf("labels = %v, want %v", l, tc.want)
			}
		})
	}
}

// TestWorkerRefusesTooManyLabels: more than 32 --label flags is a usage
// error, found before connecting.
func TestWorkerRefusesTooManyLabels(t *testing.T) {
	args := []string{"worker", "--channel", "prod/email"}
	for i := range 33 {
		args = append(args, "--label", fmt.Sprintf("k%d=v", i))
	}
	code, _, stderr := runCLI(t, "", append(args, "--", "true")...)
	if code != exitUsage || !strings.Contains(stderr, "33 labels; the limit is 32") {
		t.Errorf("exit %d, stderr %s", code, stderr)
	}
}
