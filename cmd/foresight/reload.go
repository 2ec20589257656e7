package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"

	"github.com/foresightscale/foresight/forecaster"
	"github.com/foresightscale/foresight/forecaster/budget"
	"github.com/foresightscale/foresight/forecaster/model"
)

// modelFiles is one read of a model directory: the bytes a model is parsed
// from and their hash, so that what is loaded is exactly what was hashed,
// whatever happens to the files in between.
type modelFiles struct {
	onnx, manifest []byte
	sum            [sha256.Size]byte
}

// readModelDir reads dir's model.onnx and manifest.json, following
// symbolic links (a mounted ConfigMap or Secret swaps a ..data link; a CI
// job may swap its own), and hashes their contents: a fingerprint that
// neither an atomic swap nor a touched mtime fools.
func readModelDir(dir string) (modelFiles, error) {
	fsys := os.DirFS(dir)
	var mf modelFiles
	var err error
	if mf.onnx, err = fs.ReadFile(fsys, model.ONNXFile); err != nil {
		return mf, fmt.Errorf("model %s: read %s: %w", dir, model.ONNXFile, err)
	}
	if mf.manifest, err = fs.ReadFile(fsys, model.ManifestFile); err != nil {
		return mf, fmt.Errorf("model %s: read %s: %w", dir, model.ManifestFile, err)
	}
	h := sha256.New()
	for _, b := range [][]byte{mf.onnx, mf.manifest} {
		fmt.Fprintf(h, "%d\n", len(b)) // lengths first: no two pairs of files hash alike
		h.Write(b)
	}
	copy(mf.sum[:], h.Sum(nil))
	return mf, nil
}

// parse checks the model (model.Parse: op set, shapes, golden outputs).
func (mf modelFiles) parse(dir string) (*model.Model, error) {
	m, err := model.Parse(mf.onnx, mf.manifest)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	return m, nil
}

// loadResolved reads the model of the directory resolve returns and checks
// it (files.parse): what is parsed is exactly what was hashed.
func loadResolved(resolve modelResolver) (*model.Model, string, modelFiles, error) {
	dir, err := resolve()
	if err != nil {
		return nil, dir, modelFiles{}, err
	}
	files, err := readModelDir(dir)
	if err != nil {
		return nil, dir, files, err
	}
	m, err := files.parse(dir)
	return m, dir, files, err
}

// modelResolver returns the directory an application's model is loaded
// from: the configured directory itself, a directory store's newest valid
// version, or a ConfigMap store's current version unpacked
// (modelResolverFor).
type modelResolver func() (string, error)

// reloader keeps one application's loop on the newest model in its model
// directory: each poll (and each SIGHUP) reads the directory, and when its
// contents differ from the model served, loads, checks and swaps the new
// model in (forecaster.SetModel); a model that fails is reported and the
// old one keeps serving.
type reloader struct {
	app     string
	resolve modelResolver
	loop    *forecaster.Forecaster
	// accept checks what the loop cannot: the application's budgets name
	// services the model must know.
	accept func(*model.Manifest) error
	// loaded, if set, learns the directory of every model swapped in.
	loaded func(dir string)
	log    *slog.Logger

	// served is the fingerprint of the model serving. rejected and failure
	// are the last content rejected and the last error: a poll does not
	// report the same again until the content changes (a SIGHUP does).
	served   [sha256.Size]byte
	rejected [sha256.Size]byte
	failure  string
	// force asks for a check now (SIGHUP, a promotion by serve's own
	// retraining); one pending request is enough.
	force chan struct{}
}

// newReloader watches the directory resolve returns; served is the
// fingerprint of the model the loop started with; log is the
// application's.
func newReloader(app string, resolve modelResolver, loop *forecaster.Forecaster, served [sha256.Size]byte, accept func(*model.Manifest) error, log *slog.Logger) *reloader {
	return &reloader{app: app, resolve: resolve, loop: loop, served: served, accept: accept, log: log, force: make(chan struct{}, 1)}
}

// requestCheck makes run check now, even an unchanged or rejected model.
func (r *reloader) requestCheck() {
	select {
	case r.force <- struct{}{}:
	default: // a check is already due
	}
}

// run checks every interval (never when interval is 0) and on every
// requestCheck, until ctx ends.
func (r *reloader) run(ctx context.Context, interval time.Duration) error {
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			r.check(false)
		case <-r.force:
			r.check(true)
		}
	}
}

// check loads the model when the directory's contents changed; with force
// also when they did not (SIGHUP: the operator asks for a re-read, of a
// rejected model too). It reports whether a new model now serves.
func (r *reloader) check(force bool) bool {
	dir, err := r.resolve()
	if errors.Is(err, errNoModelYet) && !r.loop.HasModel() {
		// model: auto before the first promotion: nothing to report.
		r.log.Debug("model store still empty; forecasting with the fallback", "err", err)
		return false
	}
	if err != nil {
		r.reject(dir, err, nil, force)
		return false
	}
	files, err := readModelDir(dir)
	if err != nil {
		// A directory being replaced in place may lack a file for a moment:
		// the next poll reads it again.
		r.reject(dir, err, nil, force)
		return false
	}
	if files.sum == r.served {
		r.failure = ""
		if force {
			r.log.Info("SIGHUP: model unchanged; nothing to reload", "dir", dir)
		}
		return false
	}
	if files.sum == r.rejected && !force {
		return false
	}
	err = r.load(dir, files)
	if err != nil {
		r.reject(dir, err, &files.sum, true)
		return false
	}
	r.served, r.rejected, r.failure = files.sum, [sha256.Size]byte{}, ""
	r.loop.ReportReload(dir, nil)
	if r.loaded != nil {
		r.loaded(dir)
	}
	return true
}

// load checks the model in files and swaps it into the loop. A torn read (a
// file written in place while read) fails model.Parse's golden check.
func (r *reloader) load(dir string, files modelFiles) error {
	m, err := files.parse(dir)
	if err != nil {
		return err
	}
	if r.accept != nil {
		if err := r.accept(m.Manifest()); err != nil {
			return err
		}
	}
	session, err := m.NewSession()
	if err != nil {
		return fmt.Errorf("starting model session: %w", err)
	}
	return r.loop.SetModel(m.Manifest(), session)
}

// reject reports err once per distinct failure (or always when report is
// set), and remembers the content that failed, if any, so polls do not
// load it again.
func (r *reloader) reject(dir string, err error, sum *[sha256.Size]byte, report bool) {
	if sum != nil {
		r.rejected = *sum
	}
	if !report && err.Error() == r.failure {
		return
	}
	r.failure = err.Error()
	r.loop.ReportReload(dir, err)
}

// budgetsAccept refuses a model whose services the application's budgets
// do not fit, as start-up does.
func budgetsAccept(budgets []budget.Config, key string) func(*model.Manifest) error {
	if len(budgets) == 0 {
		return nil
	}
	return func(m *model.Manifest) error {
		if err := budget.Validate(budgets, m.Services); err != nil {
			return fmt.Errorf("configuration: %w", prefixErrors(key, err))
		}
		return nil
	}
}

// runReloaders runs every application's reloader, and on each SIGHUP
// (hup) makes all of them re-read their model now.
func runReloaders(ctx context.Context, reloaders []*reloader, interval time.Duration, hup <-chan os.Signal, log *slog.Logger) error {
	var wg sync.WaitGroup
	for _, r := range reloaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = r.run(ctx, interval)
		}()
	}
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			if len(reloaders) == 0 {
				log.Info("SIGHUP: nothing to reload (every application serves the built-in model)")
				continue
			}
			log.Info("SIGHUP: re-reading every application's model", "apps", len(reloaders))
			for _, r := range reloaders {
				r.requestCheck()
			}
		}
	}
}

// podEvents records the loop's Events on the pod serve runs in: each replica
// reloads on its own, and its pod is the one object it knows without reading
// the API (a Deployment's name would need a lookup and more RBAC). Its name
// is POD_NAME (the downward API) or the hostname, which Kubernetes sets to
// the pod's name; its namespace POD_NAMESPACE or the ServiceAccount's.
// Writing them needs create on events.k8s.io events in that namespace.
type podEvents struct {
	recorder events.EventRecorder
	pod      *corev1.ObjectReference
}

// Event implements forecaster.EventRecorder.
func (p *podEvents) Event(eventType, reason, note string) {
	p.recorder.Eventf(p.pod, nil, eventType, reason, "ReloadModel", "%s", note)
}

// serviceAccountNamespace is where Kubernetes mounts the pod's namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// newPodEvents starts an Event broadcaster on client until ctx ends, or
// says why Events cannot be recorded (not in a pod).
func newPodEvents(ctx context.Context, client kubernetes.Interface) (*podEvents, error) {
	name, namespace := os.Getenv("POD_NAME"), os.Getenv("POD_NAMESPACE")
	if name == "" {
		var err error
		if name, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("pod name: %w", err)
		}
	}
	if namespace == "" {
		b, err := os.ReadFile(serviceAccountNamespace)
		if err != nil {
			return nil, fmt.Errorf("pod namespace: set POD_NAMESPACE or run in a pod: %w", err)
		}
		namespace = strings.TrimSpace(string(b))
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})
	if err := b.StartRecordingToSinkWithContext(ctx); err != nil {
		return nil, err
	}
	go func() { <-ctx.Done(); b.Shutdown() }()
	return &podEvents{
		recorder: b.NewRecorder(scheme.Scheme, "foresight.io/serve"),
		pod:      &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: namespace, Name: name},
	}, nil
}
