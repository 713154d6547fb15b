package config

import (
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// yamlLine is how yaml.v3 places an error: "line N: message", after a
// "yaml: " prefix for syntax errors. Its errors carry no line as data, so
// this is the one place their text is read.
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// YAMLErrors places an error of yaml.v3 in file: a syntax error is one
// Error, at the line where data stops being YAML when that line can be
// found (yaml.v3 names the line where the enclosing construct starts, and
// for parser errors one line early), with a column and a word on a tab in
// the indentation; each error of a *yaml.TypeError (an unknown field, a
// value of the wrong type) is its own Error at its own line, so that none
// hides behind another. data is the file's content; it may be nil, and
// then yaml.v3's lines are kept.
func YAMLErrors(file string, data []byte, err error) Errors {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		out := make(Errors, 0, len(te.Errors))
		for _, msg := range te.Errors {
			e := &Error{File: file, Msg: msg, Err: err}
			if m := yamlLine.FindStringSubmatch(msg); m != nil {
				e.Line, _ = strconv.Atoi(m[1])
				e.Msg = m[2]
			}
			out = append(out, e)
		}
		return out
	}
	e := &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: "), Err: err}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	}
	if line, text := syntaxLine(data); line > 0 {
		e.Line = line
		indent := text[:len(text)-len(bytes.TrimLeft(text, " \t"))]
		if i := bytes.IndexByte(indent, '\t'); i >= 0 { // what editors most often get wrong
			e.Column = i + 1
			if !strings.Contains(e.Msg, "tab character") {
				e.Msg += " (a tab in the indentation: YAML indents with spaces)"
			}
		}
	}
	return Errors{e}
}
