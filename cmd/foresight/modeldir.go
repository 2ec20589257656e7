package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/foresightscale/foresight/forecaster/model"
	"github.com/foresightscale/foresight/models/store"
)

// resolveModelDir returns the model directory a configured model path
// stands for: the path itself when it holds a manifest (a model directory,
// e.g. a mounted ConfigMap), or, for a model store that `foresight train
// --promote` writes, its newest version that passes serve's checks. Newer
// versions that fail are logged and passed over, so a bad promotion never
// takes a replica down.
func resolveModelDir(path string, log *slog.Logger) (string, error) {
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
		return "", fmt.Errorf("%s holds neither %s nor any model store version (train one with `foresight train --out %s` or `--promote %s`)", path, model.ManifestFile, path, path)
	}
	v, rejected, err := st.Newest(func(dir string) error {
		_, err := model.Load(dir)
		return err
	})
	for _, r := range rejected {
		log.Error("model store: a newer version does not load; serving an older one", "store", path, "version", r.Version.Name, "err", r.Err)
	}
	if err != nil {
		return "", err
	}
	return v.Dir, nil
}
