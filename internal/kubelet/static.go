package kubelet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/podspec"
)

// Annotations of static and mirror pods (upstream's names).
const (
	annotationConfigHash   = "kubernetes.io/config.hash"
	annotationConfigSource = "kubernetes.io/config.source"
	annotationConfigMirror = "kubernetes.io/config.mirror"
	annotationConfigSeen   = "kubernetes.io/config.seen"
	staticPodRescan        = 5 * time.Second
)

// readStaticPods parses the pod manifests in dir (*.yaml, *.yml, *.json)
// into pods bound to node. A pod's UID is the hash of its manifest and
// node, so an unchanged file keeps its pod across agent restarts and an
// edited one replaces it. Broken files are reported and skipped.
func readStaticPods(dir, node string, now time.Time) (map[types.UID]*v1.Pod, []error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, []error{err}
	}
	out := map[types.UID]*v1.Pod{}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".json")) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p, err := staticPod(data, node, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("static pod %s: %w", name, err))
			continue
		}
		out[p.UID] = p
	}
	return out, errs
}

func staticPod(data []byte, node string, now time.Time) (*v1.Pod, error) {
	var p v1.Pod
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, err
	}
	if p.Kind != "" && p.Kind != "Pod" {
		return nil, fmt.Errorf("kind %q, want Pod", p.Kind)
	}
	if p.Name == "" {
		return nil, fmt.Errorf("metadata.name is required")
	}
	sum := sha256.Sum256(append(append([]byte{}, data...), node...))
	hash := hex.EncodeToString(sum[:16])
	p.Name = p.Name + "-" + node
	if p.Namespace == "" {
		p.Namespace = v1.NamespaceDefault
	}
	p.UID = types.UID(hash)
	p.Spec.NodeName = node
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[annotationConfigHash] = hash
	p.Annotations[annotationConfigSource] = "file"
	p.Annotations[annotationConfigSeen] = now.UTC().Format(time.RFC3339Nano)
	// Static pods tolerate every NoExecute taint: the node runs them
	// whatever its condition (upstream does the same).
	p.Spec.Tolerations = append(p.Spec.Tolerations, v1.Toleration{Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute})
	if errs := podspec.Prepare(&p); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	p.CreationTimestamp = metav1.NewTime(now)
	return &p, nil
}

// isMirror reports whether an API pod mirrors a static pod.
func isMirror(p *v1.Pod) bool { _, ok := p.Annotations[annotationConfigMirror]; return ok }

func (k *Kubelet) isStatic(uid types.UID) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.static[uid]
	return ok
}

// watchStaticPods rescans the manifest directory and starts, replaces or
// stops static pods as files appear, change and disappear.
func (k *Kubelet) watchStaticPods(ctx context.Context) {
	if k.cfg.StaticPodDir == "" {
		return
	}
	reported := map[string]bool{}
	for {
		pods, errs := readStaticPods(k.cfg.StaticPodDir, k.cfg.NodeName, k.clock.Now())
		for _, err := range errs {
			if !reported[err.Error()] {
				k.log.Warn("static pod manifest", "err", err)
				reported[err.Error()] = true
			}
		}
		k.mu.Lock()
		var changed []types.UID
		for uid, p := range pods {
			if _, ok := k.static[uid]; !ok {
				k.static[uid] = p
				changed = append(changed, uid)
			}
		}
		for uid := range k.static {
			if _, ok := pods[uid]; !ok && errs == nil {
				delete(k.static, uid)
				changed = append(changed, uid)
			}
		}
		k.mu.Unlock()
		for _, uid := range changed {
			k.wake(uid)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(staticPodRescan):
		}
	}
}

// mirror returns the API pod mirroring the static pod, if any.
func (k *Kubelet) mirror(static *v1.Pod) *v1.Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.mirrors[static.Namespace+"/"+static.Name]
}

// syncMirror keeps one mirror pod in the API for a static pod: created
// when missing, replaced when it mirrors an older manifest or is being
// deleted (deleting a mirror does not stop a static pod).
func (k *Kubelet) syncMirror(ctx context.Context, static *v1.Pod) {
	pods := k.client.CoreV1().Pods(static.Namespace)
	if m := k.mirror(static); m != nil {
		if m.Annotations[annotationConfigMirror] == string(static.UID) && m.DeletionTimestamp == nil {
			return
		}
		err := pods.Delete(ctx, m.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &m.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			k.log.Warn("delete outdated mirror pod", "pod", static.Namespace+"/"+static.Name, "err", err)
			return
		}
	}
	m := static.DeepCopy()
	m.UID, m.ResourceVersion, m.CreationTimestamp = "", "", metav1.Time{}
	m.Annotations[annotationConfigMirror] = string(static.UID)
	if node := k.getNode(); node != nil {
		m.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
	}
	m.Status = v1.PodStatus{}
	if _, err := pods.Create(ctx, m, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		k.log.Warn("create mirror pod", "pod", static.Namespace+"/"+static.Name, "err", err)
	}
}

// deleteOrphanMirrors removes mirrors of a static pod that no longer
// exists (its manifest was removed or changed).
func (k *Kubelet) deleteOrphanMirrors(ctx context.Context, uid types.UID) {
	k.mu.Lock()
	var orphans []*v1.Pod
	for _, m := range k.mirrors {
		if m.Annotations[annotationConfigMirror] == string(uid) {
			orphans = append(orphans, m)
		}
	}
	k.mu.Unlock()
	for _, m := range orphans {
		err := k.client.CoreV1().Pods(m.Namespace).Delete(ctx, m.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &m.UID}})
		if err != nil && !apierrors.IsNotFound(err) {
			k.log.Warn("delete mirror pod", "pod", m.Namespace+"/"+m.Name, "err", err)
		}
	}
}
