package config

import (
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestCheckHandled: a loader's table of handlers that differs from its
// mapping's declaration, by a key either way, is caught.
func TestCheckHandled(t *testing.T) {
	m := &Mapping{What: "thing", Fields: []Field{{Key: "a"}, {Key: "b"}}}
	fn := func(_, _ *yaml.Node) {}
	tests := []struct {
		name   string
		fields map[string]func(k, v *yaml.Node)
		fails  bool
	}{
		{"the same keys", map[string]func(k, v *yaml.Node){"a": fn, "b": fn}, false},
		{"a key not read", map[string]func(k, v *yaml.Node){"a": fn}, true},
		{"a key not declared", map[string]func(k, v *yaml.Node){"a": fn, "b": fn, "c": fn}, true},
		{"another key", map[string]func(k, v *yaml.Node){"a": fn, "c": fn}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkHandled(m, tt.fields); (err != nil) != tt.fails {
				t.Errorf("err %v, want one: %v", err, tt.fails)
			}
		})
	}
}
