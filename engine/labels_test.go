package engine_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/engine"
)

func TestCheckLabels(t *testing.T) {
	many := map[string]string{}
	for i := range engine.MaxLabels + 1 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   string // "" when allowed
	}{
		{"none", nil, ""},
		{"plain", map[string]string{"region": "eu", "gpu": "a100"}, ""},
		{"empty value", map[string]string{"spare": ""}, ""},
		{"longest", map[string]string{strings.Repeat("k", 63): strings.Repeat("v", 255)}, ""},
		{"empty key", map[string]string{"": "x"}, "label key must be non-empty"},
		{"spaced key", map[string]string{" region": "eu"}, `label key " region" must be UTF-8 without surrounding spaces`},
		{"spaced value", map[string]string{"region": "eu "}, `label region: value "eu " must be UTF-8 without surrounding spaces`},
		{"not utf-8", map[string]string{"region": "\xff"}, `label region: value "\xff" must be UTF-8 without surrounding spaces`},
		{"long key", map[string]string{strings.Repeat("k", 64): "v"}, "is 64 bytes; the limit is 63"},
		{"long value", map[string]string{"k": strings.Repeat("v", 256)}, "label k: value is 256 bytes; the limit is 255"},
		{"too many", many, "33 labels; the limit is 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := engine.CheckLabels(tc.labels)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckLabels: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("CheckLabels: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
