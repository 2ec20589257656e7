// Package store keeps the versions of an application's model in a directory
// that the trainer writes and every serving replica reads (a volume, or a
// directory a CI job fills): one subdirectory per version, each a complete
// model directory, written under a temporary name and renamed into place,
// so a reader never sees half a version. The newest versions are kept for
// rollback; the newest one that loads is the one to serve.
package store

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"
)

// DefaultKeep is how many versions a store keeps: the serving one and a few
// to roll back to.
const DefaultKeep = 5

// versionLayout names a version by its UTC save time; the sequence number
// orders two saves within one second.
const versionLayout = "20060102T150405Z"

var versionName = regexp.MustCompile(`^(\d{8}T\d{6}Z)-(\d{3})$`)

// Dir is a model store rooted at Path.
type Dir struct {
	Path string
	Keep int
}

// Version is one stored model.
type Version struct {
	Name  string    // e.g. 20261205T235959Z-000
	Dir   string    // its model directory
	Saved time.Time // when it was saved
}

// Open returns the store at path, creating the directory if needed. keep < 1
// means DefaultKeep.
func Open(path string, keep int) (*Dir, error) {
	if path == "" {
		return nil, errors.New("model store: no directory given")
	}
	if keep < 1 {
		keep = DefaultKeep
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("model store: %w", err)
	}
	return &Dir{Path: path, Keep: keep}, nil
}

// Versions returns the stored versions, newest first. Entries that are not
// versions (temporary directories of a save in progress, other files) are
// skipped.
func (d *Dir) Versions() ([]Version, error) {
	entries, err := os.ReadDir(d.Path)
	if err != nil {
		return nil, fmt.Errorf("model store %s: %w", d.Path, err)
	}
	var out []Version
	for _, e := range entries {
		m := versionName.FindStringSubmatch(e.Name())
		if m == nil || !e.IsDir() {
			continue
		}
		t, err := time.Parse(versionLayout, m[1])
		if err != nil {
			continue
		}
		out = append(out, Version{Name: e.Name(), Dir: filepath.Join(d.Path, e.Name()), Saved: t})
	}
	slices.SortFunc(out, func(a, b Version) int { return cmp.Compare(b.Name, a.Name) })
	return out, nil
}

// Save writes files (name → content, e.g. model.onnx, manifest.json,
// report.json) as a new version saved at now, then removes the versions
// beyond Keep. The version appears whole or not at all: the files are
// written into a temporary directory in the store, synced, and the
// directory renamed to the version's name.
func (d *Dir) Save(files map[string][]byte, now time.Time) (Version, error) {
	for name := range files {
		if name == "" || filepath.Base(name) != name || name == "." || name == ".." {
			return Version{}, fmt.Errorf("model store: %q is not a plain file name", name)
		}
	}
	tmp, err := os.MkdirTemp(d.Path, ".saving-")
	if err != nil {
		return Version{}, fmt.Errorf("model store: %w", err)
	}
	defer os.RemoveAll(tmp) // gone after the rename; cleans up after a failure
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := writeSynced(filepath.Join(tmp, name), files[name]); err != nil {
			return Version{}, fmt.Errorf("model store: writing %s: %w", name, err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return Version{}, fmt.Errorf("model store: %w", err)
	}
	stamp := now.UTC().Format(versionLayout)
	for seq := 0; seq < 1000; seq++ {
		v := Version{Name: fmt.Sprintf("%s-%03d", stamp, seq), Saved: now.UTC().Truncate(time.Second)}
		v.Dir = filepath.Join(d.Path, v.Name)
		if _, err := os.Stat(v.Dir); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return Version{}, fmt.Errorf("model store: %w", err)
		}
		if err := os.Rename(tmp, v.Dir); err != nil {
			return Version{}, fmt.Errorf("model store: %w", err)
		}
		syncDir(d.Path)
		return v, d.prune()
	}
	return Version{}, fmt.Errorf("model store: 1000 versions saved at %s already", stamp)
}

// DecisionsFile is the store's promotion history: one JSON decision per
// line, promoted or kept, appended by every `train --promote`.
const DecisionsFile = "decisions.jsonl"

// RecordDecision appends one decision (a JSON object without newlines) to
// the store's promotion history.
func (d *Dir) RecordDecision(decision []byte) error {
	f, err := os.OpenFile(filepath.Join(d.Path, DecisionsFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("model store: %w", err)
	}
	if _, err := f.Write(append(slices.Clone(decision), '\n')); err != nil {
		f.Close()
		return fmt.Errorf("model store: %w", err)
	}
	return f.Close()
}

// maxDecisionTail is how much of the end of the promotion history
// LastDecision reads: far more than one decision.
const maxDecisionTail = 64 << 10

// LastDecision returns the newest decision of the promotion history (one
// JSON object), nil when there is none yet.
func (d *Dir) LastDecision() ([]byte, error) {
	f, err := os.Open(filepath.Join(d.Path, DecisionsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("model store: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("model store: %w", err)
	}
	// The history only grows: read its end.
	offset := max(0, info.Size()-maxDecisionTail)
	tail := make([]byte, info.Size()-offset)
	if _, err := f.ReadAt(tail, offset); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("model store: reading %s: %w", DecisionsFile, err)
	}
	lines := bytes.Split(bytes.TrimRight(tail, "\n"), []byte("\n"))
	last := lines[len(lines)-1]
	if len(last) == 0 || (offset > 0 && len(lines) == 1) {
		return nil, nil // empty, or one line longer than the tail: not a decision
	}
	return last, nil
}

// prune removes the versions beyond Keep, oldest first.
func (d *Dir) prune() error {
	vs, err := d.Versions()
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range vs[min(d.Keep, len(vs)):] {
		if err := os.RemoveAll(v.Dir); err != nil {
			errs = append(errs, fmt.Errorf("model store: removing old version %s: %w", v.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Rejected is a version that did not load, and why.
type Rejected struct {
	Version Version
	Err     error
}

// Newest returns the newest version that load accepts (load is the serving
// check: model.Load with every check), and the newer versions it refused.
// With no acceptable version it returns an error naming every refusal.
func (d *Dir) Newest(load func(dir string) error) (Version, []Rejected, error) {
	vs, err := d.Versions()
	if err != nil {
		return Version{}, nil, err
	}
	var rejected []Rejected
	for _, v := range vs {
		if err := load(v.Dir); err != nil {
			rejected = append(rejected, Rejected{v, err})
			continue
		}
		return v, rejected, nil
	}
	errs := []error{fmt.Errorf("model store %s holds no model that loads (%d versions)", d.Path, len(vs))}
	for _, r := range rejected {
		errs = append(errs, fmt.Errorf("%s: %w", r.Version.Name, r.Err))
	}
	return Version{}, rejected, errors.Join(errs...)
}

func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes a rename durable where the file system supports it; a
// failure only weakens durability, never correctness, so it is ignored.
func syncDir(path string) {
	if f, err := os.Open(path); err == nil {
		_ = f.Sync()
		f.Close()
	}
}
