// Package volumeprotection keeps a PersistentVolumeClaim while a pod uses
// it and a PersistentVolume while a claim is bound to it: upstream's
// pvc-protection and pv-protection controllers, which remove the
// kubernetes.io/pvc-protection and kubernetes.io/pv-protection finalizers
// (added by the StorageObjectInUseProtection admission plugin) once the
// object is deleted and no longer in use.
package volumeprotection

import (
	"context"
	"log/slog"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/admission"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/work"
)

// The finalizers, as upstream names them.
const (
	ClaimFinalizer  = admission.ClaimProtectionFinalizer
	VolumeFinalizer = admission.VolumeProtectionFinalizer
)

// Step is what a protection controller does to one object.
type Step int

const (
	// Keep leaves the object as it is.
	Keep Step = iota
	// AddFinalizer protects an object made before protection was on.
	AddFinalizer
	// RemoveFinalizer lets a deleted object that nothing uses go.
	RemoveFinalizer
)

// Plan decides for an object with finalizers fins, deleted or not,
// whether it is in use.
func Plan(fins []string, finalizer string, deleted, inUse bool) Step {
	has := slices.Contains(fins, finalizer)
	switch {
	case !deleted && !has:
		return AddFinalizer
	case deleted && has && !inUse:
		return RemoveFinalizer
	}
	return Keep
}

// PodUsesClaim says whether pod, unless it has finished, mounts the claim
// name of its namespace: directly, or as a generic ephemeral volume (whose
// claim is named <pod>-<volume>).
func PodUsesClaim(pod *corev1.Pod, name string) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == name {
			return true
		}
		if v.Ephemeral != nil && pod.Name+"-"+v.Name == name {
			return true
		}
	}
	return false
}

// VolumeInUse says whether a PersistentVolume is bound to a claim.
func VolumeInUse(pv *corev1.PersistentVolume) bool {
	return pv.Status.Phase == corev1.VolumeBound
}

// withFinalizers is fins with finalizer added or removed.
func withFinalizers(fins []string, finalizer string, step Step) []string {
	if step == AddFinalizer {
		return append(slices.Clone(fins), finalizer)
	}
	return slices.DeleteFunc(slices.Clone(fins), func(f string) bool { return f == finalizer })
}

// Claims is the pvc-protection controller.
type Claims struct {
	client kubernetes.Interface
	claims corelisters.PersistentVolumeClaimLister
	pods   corelisters.PodLister
	synced []cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]
	log    *slog.Logger
}

// NewClaims registers the pvc-protection controller's handlers: a claim is
// looked at when it changes and when a pod that used it changes or goes.
func NewClaims(cc *controller.Context) (controller.Controller, error) {
	pvcs, pods := cc.Informers.Core().V1().PersistentVolumeClaims(), cc.Informers.Core().V1().Pods()
	c := &Claims{client: cc.Client, claims: pvcs.Lister(), pods: pods.Lister(),
		synced: []cache.InformerSynced{pvcs.Informer().HasSynced, pods.Informer().HasSynced},
		queue:  work.NewQueue[string]("pvcprotection"), log: cc.Log.With("controller", "pvc-protection")}
	onClaim := func(o any) {
		if key, ok := work.KeyOf(o); ok {
			c.queue.Add(key)
		}
	}
	if _, err := pvcs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onClaim, UpdateFunc: func(_, o any) { onClaim(o) }}); err != nil {
		return nil, err
	}
	onPod := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		pod, ok := o.(*corev1.Pod)
		if !ok {
			return
		}
		for _, v := range pod.Spec.Volumes {
			switch {
			case v.PersistentVolumeClaim != nil:
				c.queue.Add(pod.Namespace + "/" + v.PersistentVolumeClaim.ClaimName)
			case v.Ephemeral != nil:
				c.queue.Add(pod.Namespace + "/" + pod.Name + "-" + v.Name)
			}
		}
	}
	_, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: onPod, UpdateFunc: func(_, o any) { onPod(o) }, DeleteFunc: onPod})
	return c, err
}

// Run implements controller.Controller.
func (c *Claims) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func (c *Claims) sync(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	pvc, err := c.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	deleted := pvc.DeletionTimestamp != nil
	inUse := false
	if deleted {
		if inUse, err = c.inUse(ctx, ns, name); err != nil {
			return err
		}
	}
	step := Plan(pvc.Finalizers, ClaimFinalizer, deleted, inUse)
	if step == Keep {
		return nil
	}
	upd := pvc.DeepCopy()
	upd.Finalizers = withFinalizers(pvc.Finalizers, ClaimFinalizer, step)
	_, err = c.client.CoreV1().PersistentVolumeClaims(ns).Update(ctx, upd, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// inUse asks the cache, and before letting a claim go, the API server
// itself, as upstream does: a pod the cache has not seen yet must not lose
// its volume.
func (c *Claims) inUse(ctx context.Context, ns, name string) (bool, error) {
	cached, err := c.pods.Pods(ns).List(labels.Everything())
	if err != nil {
		return false, err
	}
	for _, p := range cached {
		if PodUsesClaim(p, name) {
			return true, nil
		}
	}
	live, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return false, err
	}
	for i := range live.Items {
		if PodUsesClaim(&live.Items[i], name) {
			return true, nil
		}
	}
	return false, nil
}

// Volumes is the pv-protection controller.
type Volumes struct {
	client kubernetes.Interface
	pvs    corelisters.PersistentVolumeLister
	synced cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]
	log    *slog.Logger
}

// NewVolumes registers the pv-protection controller's handlers.
func NewVolumes(cc *controller.Context) (controller.Controller, error) {
	inf := cc.Informers.Core().V1().PersistentVolumes()
	c := &Volumes{client: cc.Client, pvs: inf.Lister(), synced: inf.Informer().HasSynced,
		queue: work.NewQueue[string]("pvprotection"), log: cc.Log.With("controller", "pv-protection")}
	enqueue := func(o any) {
		if key, ok := work.KeyOf(o); ok {
			c.queue.Add(key)
		}
	}
	_, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }})
	return c, err
}

// Run implements controller.Controller.
func (c *Volumes) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced)
}

func (c *Volumes) sync(ctx context.Context, name string) error {
	pv, err := c.pvs.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	step := Plan(pv.Finalizers, VolumeFinalizer, pv.DeletionTimestamp != nil, VolumeInUse(pv))
	if step == Keep {
		return nil
	}
	upd := pv.DeepCopy()
	upd.Finalizers = withFinalizers(pv.Finalizers, VolumeFinalizer, step)
	_, err = c.client.CoreV1().PersistentVolumes().Update(ctx, upd, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
