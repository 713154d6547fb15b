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
// valid JSON value, that gives a key twice. t is the type data was decoded
// into: in an object decoded into a struct, keys that differ only in case
// name the same field (encoding/json matches them so) and count as the
// same key; in data kept as it is (json.RawMessage, any), keys are compared
// exactly.
func checkKeys(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return walkKeys(dec, t, "")
}

func walkKeys(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType || t != nil && t.Kind() == reflect.Interface {
		t = nil // data: keys are compared exactly
	}
	if delim == '[' {
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkKeys(dec, elem, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	} else {
		seen := make(map[string]string) // the key, or the struct field it names → the key as first given
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
			if err := walkKeys(dec, child, sub); err != nil {
				return err
			}
		}
	}
	_, err = dec.Token() // the closing delimiter
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
