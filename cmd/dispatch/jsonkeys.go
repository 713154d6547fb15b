package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
)

// duplicateKeyError is a JSON object that gives one key twice. encoding/json
// keeps the last value without a word, and other readers of the same text
// (a worker decoding its input) may keep the first, so such text is
// refused where it is read.
type duplicateKeyError struct {
	Key   string // the key, as given the second time
	First string // the key as given the first time, when it differs in case
	Path  string // where the object is: "" at the top, "input.items[2]" below
}

// Error implements error: `duplicate key "to" in input`.
func (e *duplicateKeyError) Error() string {
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

// checkKeys returns a *duplicateKeyError for the first object in data, a
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
				return &duplicateKeyError{Key: key, First: first, Path: path}
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
