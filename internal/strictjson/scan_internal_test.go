package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
)

// walkKeysByToken is the duplicate-key check as it was written first, over
// json.Decoder.Token: the reference the byte scanner is tested against.
func walkKeysByToken(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	t = elemType(t)
	if delim == '[' {
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkKeysByToken(dec, elem, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	} else {
		seen := make(map[string]string)
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := tok.(string)
			name, child := key, reflect.Type(nil)
			switch {
			case t != nil && t.Kind() == reflect.Struct:
				if f, ok := structField(t, key); ok {
					name, child = "field "+f.Name, f.Type
				}
			case t != nil && t.Kind() == reflect.Map:
				child = t.Elem()
			}
			if first, ok := seen[name]; ok {
				return &DuplicateKeyError{Key: key, First: first, Path: path}
			}
			seen[name] = key
			sub := key
			if path != "" {
				sub = path + "." + key
			}
			if err := walkKeysByToken(dec, child, sub); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token()
	return err
}

type fuzzDoc struct {
	Name  string            `json:"name"`
	Items []json.RawMessage `json:"items"`
	Sub   *fuzzDoc          `json:"sub"`
	Tags  map[string]any    `json:"tags"`
	Any   any               `json:"any"`
}

// The byte scanner finds the same duplicate, with the same words, as the
// token walker it replaced, on every valid JSON text.
func FuzzCheckKeysAgreesWithTheTokenWalker(f *testing.F) {
	for _, s := range []string{
		`{"name": "a", "Name": "b"}`,
		`{"items": [{"k": 1}, {"k": 1, "k": 2}]}`,
		`{"sub": {"sub": {"tags": {"x": 1, "x": 2}}}}`,
		`{"any": {"[x]": {"y": 1, "y": 2}}}`,
		`[[{"a": 1}], [{"b": 1, "b": [1, {"c": 2, "c": 3}]}]]`,
		`{"\u0061": 1, "a": 2}`,
		`{"tags": {"é": 1, "\u00e9": 2}, "name": "x\"y"}`,
		`"just a string"`, `123`, `[]`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		for _, typ := range []reflect.Type{reflect.TypeFor[*fuzzDoc](), reflect.TypeFor[*any](), reflect.TypeFor[*json.RawMessage]()} {
			got := checkKeys(data, typ)
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			want := walkKeysByToken(dec, typ, "")
			var gd, wd *DuplicateKeyError
			switch {
			case errors.As(want, &wd):
				if !errors.As(got, &gd) || gd.Error() != wd.Error() {
					t.Fatalf("%s as %v: got %v, want %v", data, typ, got, want)
				}
			case got != nil:
				t.Fatalf("%s as %v: got %v, the token walker found no duplicate (%v)", data, typ, got, want)
			}
		}
	})
}

// BenchmarkCheckKeys compares the byte scanner with the token walker on a
// typical submission (see BENCHMARKS.md, "The front door").
func BenchmarkCheckKeys(b *testing.B) {
	data := []byte(`{"workflow_id": "wf-1", "activity_type": "send", "input": {"to": "a@example.com", "items": [{"sku": "x", "n": 2}, {"sku": "y", "n": 1}]}, "start_to_close": "5s"}`)
	type submission struct {
		WorkflowID   string          `json:"workflow_id"`
		ActivityType string          `json:"activity_type"`
		Input        json.RawMessage `json:"input"`
		StartToClose string          `json:"start_to_close"`
	}
	typ := reflect.TypeFor[*submission]()
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := checkKeys(data, typ); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			if err := walkKeysByToken(dec, typ, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
}
