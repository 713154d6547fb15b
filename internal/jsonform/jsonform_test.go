package jsonform

import (
	"bytes"
	"encoding/json"
	"testing"
)

// embeddableReference is Embeddable's definition, written the slow way:
// valid, free of what encoding/json escapes, and equal to its compact form.
func embeddableReference(data []byte) bool {
	if !json.Valid(data) || bytes.ContainsAny(data, "<>&\u2028\u2029") {
		return false
	}
	if data[0] == '"' || bytes.Equal(data, []byte("null")) {
		return false
	}
	var c bytes.Buffer
	if err := json.Compact(&c, data); err != nil {
		return false
	}
	return bytes.Equal(c.Bytes(), data)
}

var embeddableSeeds = []string{
	``, `null`, `"s"`, `{}`, `[]`, `1`, `true`, `{"a":1}`, `{"a": 1}`, ` {"a":1}`, "{\"a\":1}\n",
	`{"a":"x y"}`, `{"a":"<"}`, `{"a":"\u003c"}`, `{"a":"q\"b c"}`, `{"a":"\\"," ":2}`, `{"a":"\\" }`,
	"{\"a\":\"\u2028\"}", "{\"a\":\"\u2027\"}", "{\"a\":\"\xe2\x80\"}", `{"a":[1,2,{"b":null}]}`,
	`{"a":1`, `{"a":01}`, "{\"a\":\"\xff\"}", `[1,	2]`, `"a" `,
}

func TestEmbeddable(t *testing.T) {
	for _, s := range embeddableSeeds {
		if got, want := Embeddable([]byte(s)), embeddableReference([]byte(s)); got != want {
			t.Errorf("Embeddable(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzEmbeddable(f *testing.F) {
	for _, s := range embeddableSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := Embeddable(data), embeddableReference(data); got != want {
			t.Fatalf("Embeddable(%q) = %v, want %v", data, got, want)
		}
	})
}

var stringSeeds = []string{"", "plain", `q"b\s`, "<a & b>", "tab\tnl\n\r\b\f\x01\x1f", "\u2028\u2029", "bad\xffutf8", "é✓"}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range stringSeeds {
		checkString(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range stringSeeds {
		f.Add(s)
	}
	f.Fuzz(checkString)
}

func checkString(t *testing.T, s string) {
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendString(nil, s); !bytes.Equal(got, want) {
		t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
	}
	if Plain([]byte(s)) && string(AppendEscaped(nil, s)) != s {
		t.Errorf("Plain(%q), but AppendEscaped changes it", s)
	}
}

func TestFormOf(t *testing.T) {
	for _, tc := range []struct {
		ct, data string
		want     Form
	}{
		{"application/json", "", NoData},
		{"application/json", `{"a":1}`, Embedded},
		{"application/vnd.x+json; charset=utf-8", `[1]`, Embedded},
		{"application/json", `{ "a": 1 }`, String},
		{"text/plain", `{"a":1}`, String},
		{"application/octet-stream", "\xff\x00", Base64},
	} {
		if got := FormOf(tc.ct, []byte(tc.data)); got != tc.want {
			t.Errorf("FormOf(%q, %q) = %v, want %v", tc.ct, tc.data, got, tc.want)
		}
	}
}
