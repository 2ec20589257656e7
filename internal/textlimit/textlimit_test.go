package textlimit

import (
	"strings"
	"testing"
)

func TestTextLimit(t *testing.T) {
	for _, tt := range []struct {
		in                  string
		n                   int
		prefix, cut, quoted string
	}{
		{"short", 10, "short", "short", `"short"`},
		{"abcdefghij", 5, "abcde", "abcde… (10 bytes)", `"abcde"… (10 bytes)`},
		{"ééé", 3, "é", "é… (6 bytes)", `"é"… (6 bytes)`}, // never cut inside a rune
		{"a\nb\xff", 10, "a\nb\xff", "a\nb\xff", `"a\nb\xff"`},
		{"xyz", 0, "", "… (3 bytes)", `""… (3 bytes)`},
	} {
		if got := Prefix(tt.in, tt.n); got != tt.prefix {
			t.Errorf("Prefix(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.prefix)
		}
		if got := Cut(tt.in, tt.n); got != tt.cut {
			t.Errorf("Cut(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.cut)
		}
		if got := Quote(tt.in, tt.n); got != tt.quoted {
			t.Errorf("Quote(%q, %d) = %s, want %s", tt.in, tt.n, got, tt.quoted)
		}
	}
	if got := Quote(strings.Repeat("x", 1<<20), 200); len(got) > 230 {
		t.Errorf("a 1 MiB input quoted in %d bytes", len(got))
	}
}

func TestList(t *testing.T) {
	tests := []struct {
		items []string
		k     int
		want  string
	}{
		{nil, 3, ""},
		{[]string{"a", "b"}, 3, "a, b"},
		{[]string{"a", "b", "c"}, 3, "a, b, c"},
		{[]string{"a", "b", "c", "d", "e"}, 2, "a, b and 3 more"},
		{[]string{"a", "b"}, 0, "a and 1 more"},
	}
	for _, tc := range tests {
		if got := List(tc.items, tc.k); got != tc.want {
			t.Errorf("List(%q, %d) = %q, want %q", tc.items, tc.k, got, tc.want)
		}
	}
}
