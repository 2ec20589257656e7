package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 23, 59, 59, 0, time.UTC)

func files(tag string) map[string][]byte {
	return map[string][]byte{"model.onnx": []byte("onnx " + tag), "manifest.json": []byte(`{"tag":"` + tag + `"}`)}
}

func TestSaveVersionsAndPrune(t *testing.T) {
	d, err := Open(filepath.Join(t.TempDir(), "shop"), 3)
	if err != nil {
		t.Fatal(err)
	}
	var saved []Version
	for i, at := range []time.Time{t0, t0, t0.Add(time.Hour), t0.Add(2 * time.Hour), t0.Add(3 * time.Hour)} {
		v, err := d.Save(files(string(rune('a'+i))), at)
		if err != nil {
			t.Fatal(err)
		}
		saved = append(saved, v)
	}
	if saved[0].Name != "20261205T235959Z-000" || saved[1].Name != "20261205T235959Z-001" {
		t.Errorf("two saves in one second named %s and %s", saved[0].Name, saved[1].Name)
	}
	vs, err := d.Versions()
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 || vs[0].Name != saved[4].Name || vs[2].Name != saved[2].Name {
		t.Fatalf("versions %v, want the newest three of %v, newest first", vs, saved)
	}
	b, err := os.ReadFile(filepath.Join(vs[0].Dir, "manifest.json"))
	if err != nil || string(b) != `{"tag":"e"}` {
		t.Errorf("newest manifest %q (%v)", b, err)
	}
	entries, _ := os.ReadDir(d.Path)
	if len(entries) != 3 {
		t.Errorf("store holds %d entries, want 3 versions and no leftovers", len(entries))
	}
}

// TestNewestSkipsWhatDoesNotLoad: a newer version that fails the serving
// check is passed over (and reported), a save in progress and foreign
// entries are ignored, and a store with nothing that loads says why.
func TestNewestSkipsWhatDoesNotLoad(t *testing.T) {
	d, _ := Open(t.TempDir(), 5)
	good, _ := d.Save(files("good"), t0)
	bad, _ := d.Save(files("bad"), t0.Add(time.Minute))
	os.Mkdir(filepath.Join(d.Path, ".saving-123"), 0o755)
	os.WriteFile(filepath.Join(d.Path, "README"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(d.Path, "29991231T000000Z-x"), 0o755)
	load := func(dir string) error {
		b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "bad") {
			return errors.New("golden output mismatch")
		}
		return nil
	}
	v, rejected, err := d.Newest(load)
	if err != nil || v.Name != good.Name {
		t.Fatalf("newest %v (%v), want %s", v, err, good.Name)
	}
	if len(rejected) != 1 || rejected[0].Version.Name != bad.Name || !strings.Contains(rejected[0].Err.Error(), "golden") {
		t.Errorf("rejected %v, want %s with its reason", rejected, bad.Name)
	}
	_, _, err = d.Newest(func(string) error { return errors.New("refused") })
	if err == nil || !strings.Contains(err.Error(), "holds no model that loads (2 versions)") || !strings.Contains(err.Error(), bad.Name+": refused") {
		t.Errorf("nothing loads: error %v", err)
	}
}

func TestSaveRefuses(t *testing.T) {
	d, _ := Open(t.TempDir(), 2)
	for _, name := range []string{"", "../escape", "sub/model.onnx", ".."} {
		if _, err := d.Save(map[string][]byte{name: []byte("x")}, t0); err == nil {
			t.Errorf("file name %q accepted", name)
		}
	}
	if vs, _ := d.Versions(); len(vs) != 0 {
		t.Errorf("refused saves left versions %v", vs)
	}
	if _, err := Open("", 1); err == nil {
		t.Error("a store without a directory opened")
	}
}

func TestDirRecordDecision(t *testing.T) {
	d, _ := Open(t.TempDir(), 2)
	for _, line := range []string{`{"promote":true}`, `{"promote":false}`} {
		if err := d.RecordDecision([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(d.Path, DecisionsFile))
	if err != nil || string(b) != "{\"promote\":true}\n{\"promote\":false}\n" {
		t.Errorf("history %q (%v)", b, err)
	}
	if vs, _ := d.Versions(); len(vs) != 0 {
		t.Errorf("the history counts as a version: %v", vs)
	}
	if last, err := d.LastDecision(); err != nil || string(last) != `{"promote":false}` {
		t.Errorf("LastDecision = %q, %v", last, err)
	}
}

func TestDirLastDecision(t *testing.T) {
	d, _ := Open(t.TempDir(), 2)
	if last, err := d.LastDecision(); err != nil || last != nil {
		t.Fatalf("empty history: %q, %v", last, err)
	}
	// A long history: only its end is read.
	long := `{"reason":"` + strings.Repeat("x", 1000) + `"}`
	for range 100 {
		if err := d.RecordDecision([]byte(long)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.RecordDecision([]byte(`{"promote":true}`)); err != nil {
		t.Fatal(err)
	}
	if last, err := d.LastDecision(); err != nil || string(last) != `{"promote":true}` {
		t.Errorf("LastDecision = %.40q, %v", last, err)
	}
	// One line longer than what is read is no decision.
	huge := `{"reason":"` + strings.Repeat("y", maxDecisionTail) + `"}`
	if err := d.RecordDecision([]byte(huge)); err != nil {
		t.Fatal(err)
	}
	if last, err := d.LastDecision(); err != nil || last != nil {
		t.Errorf("LastDecision of a cut line = %.40q, %v", last, err)
	}
}
