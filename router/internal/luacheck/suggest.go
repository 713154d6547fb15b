package luacheck

import (
	"fmt"
	"sort"
	"strings"
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
	return fmt.Sprintf("unknown name %s%s: not a local in scope, a global the script assigns, or one the sandbox has", name, didYouMean(name, known))
}

// didYouMean returns ` (did you mean X?)` for the closest of names within
// two edits of name, or "".
func didYouMean(name string, names []string) string {
	best, bestD := "", 3
	if len(name) <= 4 {
		bestD = 2 // one edit at most: two would make any short name look close
	}
	if len(name) < 3 {
		return ""
	}
	for _, n := range names {
		if n == name {
			continue // a local of another block: not a suggestion
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// editDistance is the number of edits between a and b, in bytes, counting
// a swap of two neighbours as one (typos are often swaps).
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
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
