package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestCompletionNamesEveryFlag: for every shell and every command, every
// flag the command's flag set defines is in the completion script, in
// that command's part of it.
func TestCompletionNamesEveryFlag(t *testing.T) {
	for _, shell := range []string{"bash", "zsh"} {
		code, stdout, stderr := runCLI(t, "", "completion", shell)
		if code != exitOK {
			t.Fatalf("completion %s: exit %d: %s", shell, code, stderr)
		}
		for _, c := range commands() {
			part := commandPart(t, shell, stdout, c.name)
			flags, err := commandFlags(c)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range flags {
				if !regexp.MustCompile(`(^|[\s"'*])` + regexp.QuoteMeta(f.name) + `([\s":']|$)`).MatchString(part) {
					t.Errorf("completion %s: %s's flag %s is missing from:\n%s", shell, c.name, f.name, part)
				}
			}
		}
	}
}

// commandPart is the branch of the completion script's case statement for
// the command name: from its "name)" line to the ";;" that ends it.
func commandPart(t *testing.T, shell, script, name string) string {
	t.Helper()
	start := strings.Index(script, "\n    "+name+")\n")
	if start < 0 {
		t.Fatalf("completion %s has no branch for %s", shell, name)
	}
	part := script[start+1:]
	return part[:strings.Index(part, ";;")]
}

// TestCommandFlagsAreDocumented: every flag a command defines appears in
// its usage text, so that completion offers no flag --help does not
// explain.
func TestCommandFlagsAreDocumented(t *testing.T) {
	for _, c := range commands() {
		flags, err := commandFlags(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range flags {
			long := "-" + strings.TrimLeft(f.name, "-")
			if !regexp.MustCompile(`(^|[\s\[(,|])-?` + regexp.QuoteMeta(long) + `\b`).MatchString(c.usage) {
				t.Errorf("%s: flag %s is not in its usage", c.name, f.name)
			}
		}
	}
}

// TestCommandFlags: the probe finds the flags a command defines, telling
// the ones that take a value from the booleans.
func TestCommandFlags(t *testing.T) {
	for _, tc := range []struct {
		command string
		flag    string
		valued  bool
	}{
		{"validate", "--json", false},
		{"validate", "--against", true},
		{"validate", "-c", true},
		{"route", "--script", true},
		{"route", "--exclude", true},
		{"run", "-v", false},
		{"test", "--update", false},
		{"worker", "--tag", true},
	} {
		c, ok := lookup(tc.command)
		if !ok {
			t.Fatalf("no command %s", tc.command)
		}
		flags, err := commandFlags(c)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, f := range flags {
			if f.name == tc.flag {
				found = true
				if f.valued != tc.valued {
					t.Errorf("%s %s: valued %v, want %v", tc.command, tc.flag, f.valued, tc.valued)
				}
			}
		}
		if !found {
			t.Errorf("%s: no flag %s in %v", tc.command, tc.flag, flags)
		}
	}
}
