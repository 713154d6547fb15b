package config_test

import (
	"bytes"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/aion-dispatch/dispatch/config"
)

// Each error of a yaml.v3 decode is placed on its own line; none is
// folded into another's "(and N more)".
func TestYAMLErrors(t *testing.T) {
	data := []byte("name: a\ncolour: blue\ncount: many\nsize: 3\n")
	var v struct {
		Name  string `yaml:"name"`
		Count int    `yaml:"count"`
		Size  int    `yaml:"size"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(&v)
	if err == nil {
		t.Fatal("decoded")
	}
	errs := config.YAMLErrors("f.yaml", data, err)
	want := []string{
		"f.yaml:2: field colour not found in type struct { Name string \"yaml:\\\"name\\\"\"; Count int \"yaml:\\\"count\\\"\"; Size int \"yaml:\\\"size\\\"\" }",
		"f.yaml:3: cannot unmarshal !!str `many` into int",
	}
	if len(errs) != len(want) {
		t.Fatalf("errors %q, want %q", errs.Error(), want)
	}
	for i, e := range errs {
		if e.Error() != want[i] {
			t.Errorf("error %d: %q, want %q", i, e.Error(), want[i])
		}
	}

	// A syntax error is placed where the text stops being YAML, with a
	// word on a tab in the indentation.
	data = []byte("a:\n  b: 1\n\tc: 2\n")
	err = yaml.Unmarshal(data, &yaml.Node{})
	errs = config.YAMLErrors("g.yaml", data, err)
	if len(errs) != 1 || errs[0].Line != 3 || errs[0].Column != 1 || !bytes.Contains([]byte(errs[0].Msg), []byte("tab")) {
		t.Fatalf("syntax error placed as %q (line %d col %d)", errs.Error(), errs[0].Line, errs[0].Column)
	}
}
