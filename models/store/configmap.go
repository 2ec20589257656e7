package store

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// MaxConfigMapBytes is the most data a ConfigMap may hold (the API server
// refuses more). A model of about 25 services with its manifest and report
// takes about a quarter of it; past the limit, use a directory store.
const MaxConfigMapBytes = 1 << 20

// Labels and annotation of the store's objects.
const (
	StoreLabel        = "foresight.io/model-store"
	VersionAnnotation = "foresight.io/model-version"
)

// ConfigMap is a model store in Kubernetes ConfigMaps, reachable by the
// trainer (a Job) and every serving replica (a mounted volume, which the
// kubelet updates in place, or the API): Name holds the current version,
// Name-prev-1 … Name-prev-(Keep-1) the ones before it, newest first. The
// names are fixed, so RBAC can name every object the trainer may write.
type ConfigMap struct {
	Client          kubernetes.Interface
	Namespace, Name string
	Keep            int
}

// PreviousName is the ConfigMap holding the i-th version before the current
// one (i ≥ 1).
func (c *ConfigMap) PreviousName(i int) string { return fmt.Sprintf("%s-prev-%d", c.Name, i) }

// Current returns the files of the current version and its name; no files
// (and no error) when the store is empty.
func (c *ConfigMap) Current(ctx context.Context) (map[string][]byte, string, error) {
	cm, err := c.Client.CoreV1().ConfigMaps(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("model store configmap %s/%s: %w", c.Namespace, c.Name, err)
	}
	files := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		files[k] = []byte(v)
	}
	maps.Copy(files, cm.BinaryData)
	return files, cm.Annotations[VersionAnnotation], nil
}

// Save makes files the current version (named by now, UTC) and shifts the
// versions before it down by one, dropping the oldest beyond Keep. Each
// object is replaced whole, and the current one last: a reader sees the old
// model or the new one, never a mix. Files over MaxConfigMapBytes are
// refused before anything is written.
func (c *ConfigMap) Save(ctx context.Context, files map[string][]byte, now time.Time) (string, error) {
	var size int
	for name, b := range files {
		size += len(name) + len(b)
	}
	if size > MaxConfigMapBytes {
		return "", fmt.Errorf("model store configmap %s/%s: the model's files take %d KiB, over the %d KiB a ConfigMap holds: use a directory store on a volume instead (train --promote DIR)",
			c.Namespace, c.Name, size>>10, MaxConfigMapBytes>>10)
	}
	version := now.UTC().Format(versionLayout)
	keep := c.Keep
	if keep < 1 {
		keep = DefaultKeep
	}
	// Shift the history: prev-(k-1) ← prev-(k-2) … prev-1 ← current.
	for i := keep - 1; i >= 1; i-- {
		from := c.Name
		if i > 1 {
			from = c.PreviousName(i - 1)
		}
		src, err := c.Client.CoreV1().ConfigMaps(c.Namespace).Get(ctx, from, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("model store configmap %s/%s: %w", c.Namespace, from, err)
		}
		if err := c.put(ctx, c.PreviousName(i), src.Data, src.BinaryData, src.Annotations[VersionAnnotation]); err != nil {
			return "", err
		}
	}
	data, binary := map[string]string{}, map[string][]byte{}
	for name, b := range files {
		if strings.HasSuffix(name, ".json") && utf8.Valid(b) {
			data[name] = string(b)
		} else {
			binary[name] = b
		}
	}
	if err := c.put(ctx, c.Name, data, binary, version); err != nil {
		return "", err
	}
	return version, nil
}

// put creates or replaces the ConfigMap name with the given contents.
func (c *ConfigMap) put(ctx context.Context, name string, data map[string]string, binary map[string][]byte, version string) error {
	api := c.Client.CoreV1().ConfigMaps(c.Namespace)
	want := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: c.Namespace,
			Labels:      map[string]string{StoreLabel: c.Name, "app.kubernetes.io/managed-by": "foresight"},
			Annotations: map[string]string{VersionAnnotation: version},
		},
		Data: data, BinaryData: binary,
	}
	for attempt := 0; attempt < 3; attempt++ {
		cur, err := api.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if _, err = api.Create(ctx, want, metav1.CreateOptions{}); err == nil || !apierrors.IsAlreadyExists(err) {
				return wrapPut(c.Namespace, name, err)
			}
			continue // created meanwhile: replace it
		case err != nil:
			return wrapPut(c.Namespace, name, err)
		}
		want.ResourceVersion = cur.ResourceVersion
		if _, err = api.Update(ctx, want, metav1.UpdateOptions{}); err == nil || !apierrors.IsConflict(err) {
			return wrapPut(c.Namespace, name, err)
		}
	}
	return fmt.Errorf("model store configmap %s/%s: kept changing while being written (3 conflicts)", c.Namespace, name)
}

func wrapPut(namespace, name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("model store configmap %s/%s: %w", namespace, name, err)
}

// DecisionAnnotation holds, on the current ConfigMap, the last
// champion/challenger decision (JSON), promoted or kept.
const DecisionAnnotation = "foresight.io/last-decision"

// RecordDecision writes the last decision (JSON) on the current ConfigMap's
// annotation and records it as an Event regarding that ConfigMap (Normal
// ModelPromoted, or Normal ModelKept), where `kubectl describe` shows both.
// An empty store has no object to record on: nothing is written.
func (c *ConfigMap) RecordDecision(ctx context.Context, decision []byte, promoted bool, note string, now time.Time) error {
	api := c.Client.CoreV1().ConfigMaps(c.Namespace)
	var cm *corev1.ConfigMap
	for attempt := 0; ; attempt++ {
		var err error
		cm, err = api.Get(ctx, c.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return wrapPut(c.Namespace, c.Name, err)
		}
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations[DecisionAnnotation] = string(decision)
		if cm, err = api.Update(ctx, cm, metav1.UpdateOptions{}); err == nil {
			break
		} else if !apierrors.IsConflict(err) || attempt == 2 {
			return wrapPut(c.Namespace, c.Name, err)
		}
	}
	reason := "ModelKept"
	if promoted {
		reason = "ModelPromoted"
	}
	if len(note) > 1024 {
		note = note[:1021] + "..." // the API's limit on an Event's note
	}
	ev := &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: c.Name + "-", Namespace: c.Namespace},
		EventTime:  metav1.NewMicroTime(now), ReportingController: "foresight.io/trainer",
		ReportingInstance: "foresight-trainer", Action: "Retrain", Reason: reason, Type: corev1.EventTypeNormal, Note: note,
		Regarding: corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: c.Namespace, Name: c.Name, UID: cm.UID},
	}
	if _, err := c.Client.EventsV1().Events(c.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("model store configmap %s/%s: recording the decision as an Event: %w", c.Namespace, c.Name, err)
	}
	return nil
}

// LastDecision returns the last decision recorded on the current ConfigMap
// (JSON), nil when there is none.
func (c *ConfigMap) LastDecision(ctx context.Context) ([]byte, error) {
	cm, err := c.Client.CoreV1().ConfigMaps(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("model store configmap %s/%s: %w", c.Namespace, c.Name, err)
	}
	if d, ok := cm.Annotations[DecisionAnnotation]; ok {
		return []byte(d), nil
	}
	return nil, nil
}

// Names lists every object the store may write, for RBAC: the current one
// and its Keep-1 predecessors.
func (c *ConfigMap) Names() []string {
	keep := c.Keep
	if keep < 1 {
		keep = DefaultKeep
	}
	out := []string{c.Name}
	for i := 1; i < keep; i++ {
		out = append(out, c.PreviousName(i))
	}
	return out
}

// ParseConfigMapRef reads "configmap:NAMESPACE/NAME" or "configmap:NAME"
// (namespace then defaultNamespace); ok is false for anything else (a
// directory path).
func ParseConfigMapRef(ref, defaultNamespace string) (namespace, name string, ok bool, err error) {
	rest, found := strings.CutPrefix(ref, "configmap:")
	if !found {
		return "", "", false, nil
	}
	namespace, name = defaultNamespace, rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		namespace, name = rest[:i], rest[i+1:]
	}
	if namespace == "" || name == "" || strings.Contains(name, "/") {
		return "", "", true, fmt.Errorf(`%q: a model store ConfigMap is "configmap:NAMESPACE/NAME" or "configmap:NAME"`, ref)
	}
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return "", "", true, fmt.Errorf("%q: namespace %q: %s", ref, namespace, strings.Join(errs, "; "))
	}
	// The history objects add "-prev-N" to the name.
	if errs := validation.IsDNS1123Subdomain(name + "-prev-99"); len(errs) > 0 {
		return "", "", true, fmt.Errorf("%q: name %q (with its -prev-N suffix): %s", ref, name, strings.Join(errs, "; "))
	}
	return namespace, name, true, nil
}
