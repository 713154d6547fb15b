package config

import (
	"encoding/json"
	"fmt"

	"github.com/aion-dispatch/dispatch/engine"
)

//go:generate go run genschema.go

// SchemaPath is where the repository keeps the schema [Schema] returns,
// relative to the module's root: go generate ./config rewrites it, and a
// test checks that it is up to date.
const SchemaPath = "config/dispatch.schema.json"

// SchemaID is the schema's $id: where the repository's copy is published.
const SchemaID = "https://raw.githubusercontent.com/aion-dispatch/dispatch/main/" + SchemaPath

// Patterns of the schema.
const (
	// durationPattern is a Go duration of zero or more, as
	// time.ParseDuration reads it ("-0s" aside).
	durationPattern = `^\+?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`
	// zeroPattern is a duration of zero, however written.
	zeroPattern = `^\+?(0|((0+(\.0*)?|\.0+)(ns|us|µs|μs|ms|s|m|h))+)$`
	// trimmedPattern is a non-empty string without spaces around it.
	trimmedPattern = `^\S([\s\S]*\S)?$`
	// trimmedOrEmptyPattern is a string without spaces around it.
	trimmedOrEmptyPattern = `^(\S([\s\S]*\S)?)?$`
)

// Schema returns the JSON Schema (draft 2020-12) of the config file,
// rendered from the declarations the loader walks ([RootKeys]), indented,
// with a final newline. Editors that speak yaml-language-server complete
// and check a config with it; it checks each key and the kind of its
// value, and what cannot be checked without loading (scripts, paths,
// channel names) is left to dispatch validate.
func Schema() ([]byte, error) {
	if err := checkKinds(RootKeys); err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	s := mappingSchema(RootKeys)
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = SchemaID
	s["title"] = "dispatch config"
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	return append(out, '\n'), nil
}

// checkKinds reports a field of m (or of a mapping below it) whose kind
// the schema cannot render: a bug in the declarations, not in a config.
func checkKinds(m *Mapping) error {
	for _, f := range m.Fields {
		switch f.Kind {
		case KindString, KindInt, KindRate, KindDuration, KindBool, KindStrings, KindLabels:
		case KindMapping, KindList:
			if err := checkKinds(f.Fields); err != nil {
				return err
			}
		default:
			return fmt.Errorf("key %s of %s has no kind the schema knows (%d)", f.Key, m.What, f.Kind)
		}
	}
	return nil
}

// obj is a JSON Schema object.
type obj = map[string]any

// mappingSchema renders a mapping: a closed object of its fields, with its
// required keys and the rules of how they go together.
func mappingSchema(m *Mapping) obj {
	props := obj{}
	for _, f := range m.Fields {
		props[f.Key] = fieldSchema(f)
	}
	s := obj{"type": "object", "description": m.Doc, "properties": props, "additionalProperties": false}
	if r := m.required(); len(r) > 0 {
		s["required"] = r
	}
	if len(m.Requires) > 0 {
		s["dependentRequired"] = m.Requires
	}
	var all []any
	for _, pair := range m.Exclusive {
		all = append(all, obj{"not": obj{"required": pair[:]}})
	}
	if len(m.OneOf) > 0 {
		var alts []any
		for _, group := range m.OneOf {
			alts = append(alts, obj{"required": group, "propertyNames": obj{"enum": group}})
		}
		all = append(all, obj{"oneOf": alts})
	}
	if len(all) == 1 {
		for k, v := range all[0].(obj) {
			s[k] = v
		}
	} else if len(all) > 1 {
		s["allOf"] = all
	}
	return s
}

// fieldSchema renders one key's value.
func fieldSchema(f Field) obj {
	var s obj
	switch f.Kind {
	case KindString:
		s = stringSchema(f)
	case KindInt:
		s = obj{"type": "integer", "minimum": f.Min, "maximum": f.Max}
		if f.Min == f.Max {
			s = obj{"const": f.Min}
		}
	case KindRate:
		s = obj{"type": "number", "minimum": 0, "maximum": 1}
	case KindDuration:
		s = obj{"type": "string", "pattern": durationPattern}
		if f.Positive {
			s["not"] = obj{"pattern": zeroPattern}
		} else {
			// YAML's 0 is a number, which the loader takes as a duration.
			s = obj{"anyOf": []any{s, obj{"const": 0}}}
		}
	case KindBool:
		s = obj{"type": "boolean"}
	case KindStrings:
		s = obj{"type": "array", "items": stringSchema(Field{Kind: KindString, NonEmpty: f.Trimmed, Trimmed: f.Trimmed})}
		if f.NonEmpty {
			s["minItems"] = 1
		}
	case KindLabels:
		s = obj{"type": "object", "maxProperties": engine.MaxLabels,
			"propertyNames":        obj{"type": "string", "maxLength": engine.MaxLabelKeyLen, "pattern": trimmedPattern},
			"additionalProperties": obj{"type": "string", "maxLength": engine.MaxLabelValueLen, "pattern": trimmedOrEmptyPattern}}
	case KindMapping:
		s = mappingSchema(f.Fields)
	case KindList:
		s = obj{"type": "array", "items": mappingSchema(f.Fields)}
		if f.NonEmpty {
			s["minItems"] = 1
		}
	default: // checkKinds refused it before
		s = obj{}
	}
	if f.Doc != "" {
		s["description"] = f.Doc
	}
	return s
}

// stringSchema renders a string key or list item.
func stringSchema(f Field) obj {
	s := obj{"type": "string"}
	if len(f.Enum) > 0 {
		s["enum"] = f.Enum
	}
	if f.NonEmpty {
		s["minLength"] = 1
	}
	if f.Trimmed {
		s["pattern"] = trimmedPattern
	}
	return s
}
