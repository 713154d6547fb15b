package main

import (
	"io"
	"strings"
	"testing"
)

// TestReadArgIsBounded: --candidates and --request read from stdin or a
// file no further than maxArgBytes, and say so rather than cut the text.
func TestReadArgIsBounded(t *testing.T) {
	endless := io.MultiReader(strings.NewReader("["), spaces{})
	_, err := readArg("-", endless)
	if err == nil || err.Error() != "standard input is over the limit of 16777216 bytes" {
		t.Errorf("err = %v", err)
	}
	_, err = readArg("@/dev/zero", nil)
	if err == nil || err.Error() != "/dev/zero is over the limit of 16777216 bytes" {
		t.Errorf("err = %v", err)
	}
	got, err := readArg("-", strings.NewReader("\uFEFF[]"))
	if err != nil || string(got) != "[]" {
		t.Errorf("with a byte-order mark: %q, %v", got, err)
	}
}

// spaces reads as an endless run of spaces.
type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}
