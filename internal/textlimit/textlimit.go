// Package textlimit cuts untrusted text (a CSV cell, a label set, a
// selector) to a bounded size before it goes into an error or a log line:
// inputs can be megabytes long, and one once became a 31 MB log line.
package textlimit

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Prefix returns at most n bytes of s, never cut inside a rune.
func Prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Cut returns s whole when it is at most n bytes, else its prefix and how
// long it was: `abc… (12345 bytes)`.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", Prefix(s, n), len(s))
}

// Quote is Cut with the text Go-quoted, so control characters and invalid
// UTF-8 cannot break the line: `"abc"… (12345 bytes)`.
func Quote(s string, n int) string {
	if len(s) <= n {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s… (%d bytes)", strconv.Quote(Prefix(s, n)), len(s))
}

// List joins at most k items with ", " and says how many more there are
// ("a, b and 3 more"), so a list of 500 services stays one short line.
func List(items []string, k int) string {
	k = max(k, 1) // at least one name: "and 3 more" alone says nothing
	if len(items) <= k {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:k], ", "), len(items)-k)
}
