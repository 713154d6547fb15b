// Package jsonform holds what the journal and the wire protocol share of
// their JSON forms: how a payload's data is written (embedded JSON, a JSON
// string, or base64), and a JSON string writer that writes what
// encoding/json does, without reflection.
//
// It is pure: no I/O, and no import of the engine, so that the engine can
// use it too (to tell a JSON content type).
package jsonform

import (
	"encoding/json"
	"mime"
	"strings"
	"unicode/utf8"
)

// Form is how a payload's data is written in JSON.
type Form int

// The forms of a payload's data.
const (
	// NoData: there is no data to write.
	NoData Form = iota
	// Embedded: the data is compact JSON under a JSON content type, written
	// as itself in "data", so that it stays readable.
	Embedded
	// String: the data is other UTF-8 text, written as a JSON string in
	// "data".
	String
	// Base64: anything else, written base64 in "data_base64".
	Base64
)

// FormOf returns how data under contentType is written.
func FormOf(contentType string, data []byte) Form {
	switch {
	case len(data) == 0:
		return NoData
	case IsJSONContentType(contentType) && Embeddable(data):
		return Embedded
	case utf8.Valid(data):
		return String
	}
	return Base64
}

// IsJSONContentType reports whether ct is application/json or a +json type.
func IsJSONContentType(ct string) bool {
	if ct == "application/json" { // the common case, without parsing
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// Embeddable reports whether data can be written as a JSON value and read
// back byte for byte: valid, already compact, and free of the characters
// encoding/json would escape. Past json.Valid it is one pass over data,
// without allocating: the journal asks it of every payload it records.
func Embeddable(data []byte) bool {
	// A JSON string would read back as its contents, and null as no data.
	if len(data) == 0 || data[0] == '"' || string(data) == "null" || !json.Valid(data) {
		return false
	}
	inString, escaped := false, false
	for i, b := range data {
		switch b {
		case '<', '>', '&': // encoding/json escapes these anywhere
			return false
		case 0xE2: // U+2028 and U+2029, which it escapes too
			if i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xA8 || data[i+2] == 0xA9) {
				return false
			}
		}
		switch {
		case escaped:
			escaped = false
		case inString:
			switch b {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case b == '"':
			inString = true
		case b == ' ' || b == '\t' || b == '\n' || b == '\r': // space json.Compact would remove
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaping what JSON requires and
// what encoding/json escapes (<, >, &, U+2028, U+2029), with invalid UTF-8
// replaced by U+FFFD, so that the result is what json.Marshal would write.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = AppendEscaped(dst, s)
	return append(dst, '"')
}

// plainASCII marks the ASCII bytes a JSON string holds as they are.
var plainASCII = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// Plain reports whether b is ASCII that a JSON string holds as it is:
// AppendEscaped would append it unchanged.
func Plain(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf || !plainASCII[c] {
			return false
		}
	}
	return true
}

// AppendEscaped appends s escaped as the inside of a JSON string, as
// [AppendString] does.
func AppendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if plainASCII[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}
