package names

import (
	"fmt"
	"strings"
)

// DidYouMean returns ` (did you mean X?)` for the closest of among within
// two edits of name (one, for a name of four bytes or fewer; none under
// three), or "". Both languages' checks suggest with it.
func DidYouMean(name string, among []string) string {
	best, bestD := "", 3
	if len(name) <= 4 {
		bestD = 2 // one edit at most: two would make any short name look close
	}
	if len(name) < 3 {
		return ""
	}
	for _, n := range among {
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
