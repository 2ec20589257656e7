package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/models/store"
)

// errNoModelYet says a model store holds no model yet: model: auto
// forecasts with the fallback until one is promoted.
var errNoModelYet = errors.New("no model in the store yet")

// resolveModelDir returns the model directory a configured model path
// stands for: the path itself when it holds a manifest (a model directory,
// e.g. a mounted ConfigMap), or, for a model store that `foresight train
// --promote` writes, its newest version that passes serve's checks. Newer
// versions that fail are reported through rejected (once per version, by
// the caller) and passed over, so a bad promotion never takes a replica
// down.
func resolveModelDir(path string, rejected func(store.Rejected)) (string, error) {
	r := &dirResolver{path: path, rejected: rejected}
	return r.resolve()
}

// dirResolver is resolveModelDir with a memory of the store versions it
// has checked: a version is written whole under a new name and never
// rewritten, so one that loaded (or failed) once is not loaded again at
// every poll just to choose it. What serves is still checked in full: the
// reloader hashes the chosen directory's files each poll and loads any
// change.
type dirResolver struct {
	path     string
	rejected func(store.Rejected)
	loaded   string           // the version that last loaded
	failed   map[string]error // versions that did not
}

func (r *dirResolver) resolve() (string, error) {
	path := r.path
	if info, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("model %s: no such directory (want a model directory with %s and %s, or a model store)", path, model.ONNXFile, model.ManifestFile)
	} else if err != nil {
		return "", err
	} else if !info.IsDir() {
		return "", fmt.Errorf("model %s: not a directory (want a model directory with %s and %s, or a model store)", path, model.ONNXFile, model.ManifestFile)
	}
	if _, err := os.Stat(filepath.Join(path, model.ManifestFile)); err == nil {
		return path, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	st := &store.Dir{Path: path, Keep: store.DefaultKeep}
	vs, err := st.Versions()
	if err != nil {
		return "", err
	}
	if len(vs) == 0 {
		return "", fmt.Errorf("%s holds neither %s nor any model store version (train one with `foresight train --out %s` or `--promote %s`): %w", path, model.ManifestFile, path, path, errNoModelYet)
	}
	if r.failed == nil {
		r.failed = map[string]error{}
	}
	v, bad, err := st.Newest(func(dir string) error {
		name := filepath.Base(dir)
		if name == r.loaded {
			return nil
		}
		if err, ok := r.failed[name]; ok {
			return err
		}
		if _, err := model.Load(dir); err != nil {
			r.failed[name] = err
			return err
		}
		return nil
	})
	for _, b := range bad {
		r.rejected(b)
	}
	if err != nil {
		return "", err
	}
	r.loaded = v.Name
	return v.Dir, nil
}

// logRejectedOnce logs each store version that does not load once, not at
// every poll.
func logRejectedOnce(path string, log *slog.Logger) func(store.Rejected) {
	seen := map[string]bool{}
	return func(r store.Rejected) {
		if !seen[r.Version.Name] {
			seen[r.Version.Name] = true
			log.Error("model store: a newer version does not load; serving an older one (remove it, or promote a good one)", "store", path, "version", r.Version.Name, "err", r.Err)
		}
	}
}

// modelResolverFor returns the resolver of an application's configured
// model: "configmap:[NAMESPACE/]NAME" reads the ConfigMap model store
// through the Kubernetes API (the current version, unpacked into a local
// directory each time it changes); any other path is a model directory or a
// directory model store (resolveModelDir).
func (o *serveOptions) modelResolverFor(ref, namespace string, log *slog.Logger) (modelResolver, error) {
	ns, name, isConfigMap, err := store.ParseConfigMapRef(ref, namespace)
	if err != nil {
		return nil, err
	}
	if !isConfigMap {
		r := &dirResolver{path: ref, rejected: logRejectedOnce(ref, log)}
		return r.resolve, nil
	}
	_, client, err := o.kubeClient("model store " + ref)
	if err != nil {
		return nil, err
	}
	cache, err := os.MkdirTemp("", "foresight-model-")
	if err != nil {
		return nil, fmt.Errorf("model store %s: a local directory to unpack it into: %w", ref, err)
	}
	cm := &configMapModel{store: &store.ConfigMap{Client: client, Namespace: ns, Name: name}, cache: cache}
	return cm.resolve, nil
}

// configMapModel unpacks the current version of a ConfigMap model store
// into a directory of its own per version, so a version is never rewritten
// under a reader.
type configMapModel struct {
	store *store.ConfigMap
	cache string
	dir   string // the last version unpacked
	sum   [sha256.Size]byte
}

func (c *configMapModel) resolve() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	files, version, err := c.store.Current(ctx)
	if err != nil {
		return "", err
	}
	if files == nil {
		return "", fmt.Errorf("model store configmap %s/%s does not exist yet: train a first model (foresight train --promote configmap:%s/%s, or run the retraining CronJob once): %w",
			c.store.Namespace, c.store.Name, c.store.Namespace, c.store.Name, errNoModelYet)
	}
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		fmt.Fprintf(h, "%s %d\n", name, len(files[name]))
		h.Write(files[name])
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	if c.dir != "" && sum == c.sum {
		return c.dir, nil
	}
	dir, err := os.MkdirTemp(c.cache, "v"+version+"-")
	if err != nil {
		return "", err
	}
	for _, name := range []string{model.ONNXFile, model.ManifestFile, "report.json"} {
		b, ok := files[name]
		if !ok {
			continue // a missing model file fails the load, with its name
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return "", fmt.Errorf("unpacking the model store: %w", err)
		}
	}
	if c.dir != "" {
		_ = os.RemoveAll(c.dir) // its model was read into memory when it was loaded
	}
	c.dir, c.sum = dir, sum
	return dir, nil
}
