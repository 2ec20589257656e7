package model

import "testing"

// A name from the manifest is quoted in an error only when it could break
// the line; ordinary names read as they are.
func TestKeyQuotesOnlyWhatCouldBreakALine(t *testing.T) {
	for in, want := range map[string]string{
		"requests":       "requests",
		"frontend-v2.ns": "frontend-v2.ns",
		"a\nb":           `"a\nb"`,
		"with space":     `"with space"`,
		"\x1b[31m":       `"\x1b[31m"`,
	} {
		if got := key(in); got != want {
			t.Errorf("key(%q) = %s, want %s", in, got, want)
		}
	}
}
