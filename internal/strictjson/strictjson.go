// Package strictjson decodes JSON written by people (requests lines,
// submissions, flags) strictly: an unknown field, data after the value and
// a key given twice are refused, and errors are worded in the JSON's terms
// (field names, byte offsets) rather than Go's.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Decode decodes one JSON value into v, refusing unknown fields and
// trailing data, with errors in the input's terms rather than Go's.
func Decode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	// A key given twice is refused too. Elements kept raw are decoded, and
	// checked, one by one, so that an error can say which.
	if _, elems := v.(*[]json.RawMessage); elems {
		return nil
	}
	return checkKeys(data, reflect.TypeOf(v))
}

// jsonError rewords encoding/json's errors, which name Go types and struct
// fields, for someone who wrote the JSON.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		what := fmt.Sprintf("want %s, not a JSON %s", jsonKind(typeErr.Type.Kind()), typeErr.Value)
		if n, ok := strings.CutPrefix(typeErr.Value, "number "); ok && !strings.ContainsAny(n, ".eE") {
			what = fmt.Sprintf("%s is out of range", n) // a whole number too big for its field
		}
		if typeErr.Field == "" {
			return errors.New(what)
		}
		return fmt.Errorf("%s: %s", typeErr.Field, what)
	case errors.As(err, &syntaxErr):
		return fmt.Errorf("not valid JSON at byte %d: %s", syntaxErr.Offset, strings.TrimPrefix(syntaxErr.Error(), "json: "))
	case errors.Is(err, io.EOF):
		return errors.New("empty: want a JSON value")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("the JSON value ends too soon")
	}
	if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("unknown field %s", msg)
	}
	return err
}

func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "another type"
}

// DuplicateKeyError is the error of a JSON object that gives one key twice. encoding/json
// keeps the last value without a word, and other readers of the same text
// (a worker decoding its input) may keep the first, so such text is
// refused where it is read.
type DuplicateKeyError struct {
	Key   string // the key, as given the second time
	First string // the key as given the first time, when it differs in case
	Path  string // where the object is: "" at the top, "input.items[2]" below

	under []pathStep // while checkKeys unwinds: the steps above the object, innermost first
}

// Error implements error: `duplicate key "to" in input`.
func (e *DuplicateKeyError) Error() string {
	msg := "duplicate key " + strconv.Quote(e.Key)
	if e.First != "" && e.First != e.Key {
		msg += " (the same field as " + strconv.Quote(e.First) + ")"
	}
	if e.Path != "" {
		msg += " in " + e.Path
	}
	return msg
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// checkKeys returns a *DuplicateKeyError for the first object in data, a
// valid JSON value, that gives a key twice, in document order, a key
// before the value it names. t is the type data was decoded into: in an
// object decoded into a struct, keys that differ only in case name the
// same field (encoding/json matches them so) and count as the same key;
// in data kept as it is (json.RawMessage, any), keys are compared exactly.
//
// It scans the bytes itself rather than through json.Decoder.Token, which
// allocates for every token: read strictly, a submission's duplicate-key
// check cost more than its dispatch (BENCHMARKS.md, "The front door").
func checkKeys(data []byte, t reflect.Type) error {
	s := keyScanner{data: data}
	return renderPath(s.value(t))
}

// keyScanner walks a valid JSON text for checkKeys.
type keyScanner struct {
	data []byte
	i    int
}

func (s *keyScanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// value checks the value at s.i, decoded into t (nil: kept as it is).
func (s *keyScanner) value(t reflect.Type) error {
	s.space()
	if s.i >= len(s.data) {
		return nil
	}
	switch s.data[s.i] {
	case '{':
		return s.object(elemType(t))
	case '[':
		return s.array(elemType(t))
	case '"':
		s.str()
	default: // a number, true, false or null
		for s.i < len(s.data) && !bytes.ContainsRune([]byte(",}] \t\r\n"), rune(s.data[s.i])) {
			s.i++
		}
	}
	return nil
}

// elemType is t without pointers, or nil where keys are compared exactly.
func elemType(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType || t != nil && t.Kind() == reflect.Interface {
		return nil
	}
	return t
}

// str reads the string at s.i and returns its value.
func (s *keyScanner) str() string {
	start := s.i
	escaped := false
	for j := start + 1; j < len(s.data); j++ {
		switch s.data[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			s.i = j + 1
			raw := s.data[start+1 : j]
			if !escaped && utf8.Valid(raw) {
				return string(raw)
			}
			var v string
			_ = json.Unmarshal(s.data[start:j+1], &v) // valid JSON: as encoding/json reads it
			return v
		}
	}
	s.i = len(s.data)
	return ""
}

func (s *keyScanner) array(t reflect.Type) error {
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	s.i++ // [
	for n := 0; ; n++ {
		s.space()
		if s.i >= len(s.data) || s.data[s.i] == ']' {
			s.i++
			return nil
		}
		if err := s.value(elem); err != nil {
			return within("["+strconv.Itoa(n)+"]", true, err)
		}
		s.space()
		if s.i < len(s.data) && s.data[s.i] == ',' {
			s.i++
		}
	}
}

func (s *keyScanner) object(t reflect.Type) error {
	var seen keySet
	s.i++ // {
	for {
		s.space()
		if s.i >= len(s.data) || s.data[s.i] == '}' {
			s.i++
			return nil
		}
		key := s.str()
		s.space()
		s.i++ // :
		name, child := key, reflect.Type(nil)
		switch {
		case t != nil && t.Kind() == reflect.Struct:
			if f, ok := structField(t, key); ok {
				name, child = "field "+f.Name, f.Type
			}
		case t != nil && t.Kind() == reflect.Map:
			child = t.Elem()
		}
		if first, ok := seen.add(name, key); !ok {
			return &DuplicateKeyError{Key: key, First: first}
		}
		if err := s.value(child); err != nil {
			return within(key, false, err)
		}
		s.space()
		if s.i < len(s.data) && s.data[s.i] == ',' {
			s.i++
		}
	}
}

// keySet holds an object's keys as they are seen: by name (the key, or
// the struct field it names), the key as first given. Most objects have a
// few keys: those are kept in a list, a map only past smallKeys.
type keySet struct {
	list []keyName
	m    map[string]string
}

type keyName struct{ name, key string }

const smallKeys = 16

// add notes name, given as key, and reports false with the key first
// given for it if it was seen already.
func (ks *keySet) add(name, key string) (first string, ok bool) {
	if ks.m != nil {
		if first, dup := ks.m[name]; dup {
			return first, false
		}
		ks.m[name] = key
		return "", true
	}
	for _, kn := range ks.list {
		if kn.name == name {
			return kn.key, false
		}
	}
	ks.list = append(ks.list, keyName{name, key})
	if len(ks.list) > smallKeys {
		ks.m = make(map[string]string, 2*len(ks.list))
		for _, kn := range ks.list {
			ks.m[kn.name] = kn.key
		}
		ks.list = nil
	}
	return "", true
}

// within notes that a duplicate found in the value at step (a key, or
// "[n]" when index) is under that step; checkKeys renders the path.
func within(step string, index bool, err error) error {
	var dup *DuplicateKeyError
	if errors.As(err, &dup) {
		dup.under = append(dup.under, pathStep{step, index})
	}
	return err
}

// pathStep is one step of a duplicate's path: a key, or an index.
type pathStep struct {
	text  string
	index bool
}

// renderPath sets dup.Path from the steps noted on the way out, innermost
// first: keys joined by ".", indexes appended, as "input.items[2]".
func renderPath(err error) error {
	var dup *DuplicateKeyError
	if errors.As(err, &dup) {
		var p strings.Builder
		for i := len(dup.under) - 1; i >= 0; i-- {
			st := dup.under[i]
			if !st.index && p.Len() > 0 {
				p.WriteByte('.')
			}
			p.WriteString(st.text)
		}
		dup.Path, dup.under = p.String(), nil
	}
	return err
}

// structField returns the field of t that encoding/json decodes key into:
// the one whose name is key, else one whose name equals it but for case.
func structField(t reflect.Type, key string) (reflect.StructField, bool) {
	var folded reflect.StructField
	found := false
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		if name == key {
			return f, true
		}
		if !found && strings.EqualFold(name, key) {
			folded, found = f, true
		}
	}
	return folded, found
}
