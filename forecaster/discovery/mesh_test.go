package discovery

import (
	"slices"
	"strings"
	"testing"
)

func TestParseMesh(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Mesh
		err  bool
	}{
		{"", Auto, false}, {"auto", Auto, false}, {" Istio ", Istio, false}, {"linkerd", Linkerd, false},
		{"otel", OpenTelemetry, false}, {"tempo", OpenTelemetry, false}, {"OpenTelemetry", OpenTelemetry, false},
		{"consul", "", true}, {"istio,linkerd", "", true},
	} {
		got, err := ParseMesh(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseMesh(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

// FuzzParseMesh: an accepted value is Auto or one of Meshes and parses to
// itself again; a refusal names the value and the choices, briefly.
func FuzzParseMesh(f *testing.F) {
	for _, s := range []string{"", "auto", "istio", "LINKERD", "otel", "tempo", "consul", "\x00", strings.Repeat("a", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMesh(s)
		if err != nil {
			if !strings.Contains(err.Error(), "want auto, istio, linkerd or otel") || len(err.Error()) > 400 {
				t.Fatalf("error %q", err)
			}
			return
		}
		if m != Auto && !slices.Contains(Meshes, m) {
			t.Fatalf("ParseMesh(%q) = %q, not a known mesh", s, m)
		}
		if again, err := ParseMesh(string(m)); err != nil || again != m {
			t.Fatalf("ParseMesh(%q) = %q, %v: not stable", m, again, err)
		}
	})
}
