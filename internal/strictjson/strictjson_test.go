package strictjson_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aion-dispatch/dispatch/internal/strictjson"
)

type doc struct {
	Name  string          `json:"name"`
	Count int             `json:"count"`
	Input json.RawMessage `json:"input"`
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		in, err string // err: a part of the error; "" for none
	}{
		{`{"name": "a", "count": 2, "input": {"x": 1}}`, ""},
		{`{"name": "a", "extra": 1}`, `unknown field "extra"`},
		{`{"name": "a"} {}`, "unexpected data after the JSON value"},
		{`{"name": "a", "name": "b"}`, `duplicate key "name"`},
		{`{"name": "a", "Name": "b"}`, `duplicate key "Name" (the same field as "name")`},
		{`{"input": {"to": 1, "to": 2}}`, `duplicate key "to" in input`},
		{`{"input": {"To": 1, "to": 2}}`, ""}, // raw data: keys compared exactly
		{`{"count": "x"}`, "count: want a whole number, not a JSON string"},
		{`{"count": 1e999}`, "count"},
		{`{"name": `, "ends too soon"},
		{``, "empty: want a JSON value"},
		{`{"name": "a",}`, "not valid JSON at byte"},
	} {
		var d doc
		err := strictjson.Decode([]byte(tc.in), &d)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Decode(%s): %v", tc.in, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Decode(%s) = %v, want an error containing %q", tc.in, err, tc.err)
		}
	}
}

func TestDuplicateKeyErrorIsTyped(t *testing.T) {
	var d doc
	err := strictjson.Decode([]byte(`{"input": {"a": [{"k": 1, "k": 2}]}}`), &d)
	var dup *strictjson.DuplicateKeyError
	if !errors.As(err, &dup) || dup.Key != "k" || dup.Path != "input.a[0]" {
		t.Fatalf("err = %v (%+v), want a DuplicateKeyError for k at input.a[0]", err, dup)
	}
}

// An object with more keys than the scanner keeps in a list is checked as
// well: a duplicate after twenty keys, and one among the first.
func TestDecodeManyKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"input": {`)
	for i := range 20 {
		fmt.Fprintf(&b, `"k%d": %d, `, i, i)
	}
	for _, last := range []string{`"k20": 1, "k19": 2}}`, `"k20": 1, "k3": 2}}`} {
		var d doc
		err := strictjson.Decode([]byte(b.String()+last), &d)
		var dup *strictjson.DuplicateKeyError
		if !errors.As(err, &dup) || dup.Path != "input" {
			t.Fatalf("%s: %v, want a duplicate in input", last, err)
		}
	}
	var d doc
	if err := strictjson.Decode([]byte(b.String()+`"k20": 1}}`), &d); err != nil {
		t.Fatal(err)
	}
}
