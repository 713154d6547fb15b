package luacheck

import (
	"fmt"
	"sort"
	"strings"

	"github.com/aion-dispatch/dispatch/router/internal/names"
)

// unknownName says why name is unknown, with a close name if there is one.
func (c *nameCheck) unknownName(name string) string {
	if why, removed := sandboxRemoved[name]; removed {
		if why != "" {
			why = ": " + why
		}
		return fmt.Sprintf("%s is not available to routing scripts (the sandbox removes it)%s", name, why)
	}
	var known []string
	for n := range c.declared {
		known = append(known, n)
	}
	for n := range baseGlobals {
		known = append(known, n)
	}
	for n := range c.assigned {
		known = append(known, n)
	}
	known = append(known, "dispatch")
	sort.Strings(known)
	return fmt.Sprintf("unknown name %s%s: not a local in scope, a global the script assigns, or one the sandbox has", name, names.DidYouMean(name, known))
}

// TokenColumn returns the 1-based column of token in line (as a whole word
// when it is one), or 0.
func TokenColumn(line, token string) int {
	if token == "" {
		return 0
	}
	word := true
	for _, r := range token {
		word = word && (r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}
	for from := 0; ; {
		i := strings.Index(line[from:], token)
		if i < 0 {
			return 0
		}
		i += from
		end := i + len(token)
		isWord := func(b byte) bool {
			return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
		}
		if !word || ((i == 0 || !isWord(line[i-1])) && (end == len(line) || !isWord(line[end]))) {
			return i + 1
		}
		from = end
	}
}
