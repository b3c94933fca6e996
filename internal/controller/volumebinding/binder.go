// Package volumebinding binds PersistentVolumeClaims to matching static
// PersistentVolumes (class, size, access modes, volume mode, selector), and
// releases or deletes volumes whose claim is gone as their reclaim policy
// says. Claims of WaitForFirstConsumer classes wait for the scheduler's
// selected-node annotation.
package volumebinding

import (
	"context"
	"log/slog"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/volumematch"
)

// Annotations upstream's binder sets and the scheduler reads.
const (
	annBindCompleted  = "pv.kubernetes.io/bind-completed"
	annBoundByCtrl    = "pv.kubernetes.io/bound-by-controller"
	annSelectedNode   = "volume.kubernetes.io/selected-node"
	queueKeyAllClaims = "*"
)

// Controller is the PersistentVolume binder.
type Controller struct {
	client   kubernetes.Interface
	pvs      corelisters.PersistentVolumeLister
	pvcs     corelisters.PersistentVolumeClaimLister
	classes  storagelisters.StorageClassLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	log      *slog.Logger
}

// New registers the controller's informer handlers. Every change requeues a
// full pass: binding is decided over all free volumes at once.
func New(cc *controller.Context) (controller.Controller, error) {
	pv, pvc, sc := cc.Informers.Core().V1().PersistentVolumes(), cc.Informers.Core().V1().PersistentVolumeClaims(), cc.Informers.Storage().V1().StorageClasses()
	c := &Controller{
		client: cc.Client, pvs: pv.Lister(), pvcs: pvc.Lister(), classes: sc.Lister(),
		synced:   []cache.InformerSynced{pv.Informer().HasSynced, pvc.Informer().HasSynced, sc.Informer().HasSynced},
		queue:    work.NewQueue[string]("volumes"),
		recorder: cc.Recorder("persistentvolume-controller"),
		log:      cc.Log.With("controller", "persistentvolume-binder"),
	}
	all := func(any) { c.queue.Add(queueKeyAllClaims) }
	h := work.OnChange(all)
	for _, inf := range []cache.SharedIndexInformer{pv.Informer(), pvc.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Run implements controller.Controller (one worker: passes are global).
func (c *Controller) Run(ctx context.Context, _ int) {
	if !work.WaitForSync(ctx, c.synced...) {
		return
	}
	work.Work(ctx, c.log, c.queue, 1, func(ctx context.Context, _ string) error { return c.pass(ctx) })
}

func (c *Controller) pass(ctx context.Context) error {
	pvs, err := c.pvs.List(labels.Everything())
	if err != nil {
		return err
	}
	claims, err := c.pvcs.List(labels.Everything())
	if err != nil {
		return err
	}
	claimUIDs := map[string]*corev1.PersistentVolumeClaim{}
	for _, cl := range claims {
		claimUIDs[string(cl.UID)] = cl
	}
	// Volumes whose claim is gone: Released, or deleted when asked to.
	for _, pv := range pvs {
		ref := pv.Spec.ClaimRef
		released := pv.Status.Phase == corev1.VolumeReleased &&
			(pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.DeletionTimestamp != nil)
		if ref == nil || ref.UID == "" || released {
			continue
		}
		if claimUIDs[string(ref.UID)] != nil {
			continue
		}
		if err := c.release(ctx, pv); err != nil {
			return err
		}
	}
	for _, cl := range claims {
		if cl.DeletionTimestamp != nil || cl.Status.Phase == corev1.ClaimBound {
			continue
		}
		candidates := pvs
		if c.waitsForConsumer(cl) {
			// Until the scheduler picks a node, only a volume it (or the
			// user) reserved for this claim may be bound.
			if candidates = reservedFor(pvs, cl); len(candidates) == 0 {
				continue
			}
		}
		pv := volumematch.Best(candidates, cl)
		if pv == nil {
			continue
		}
		if err := c.bind(ctx, pv, cl); err != nil {
			return err
		}
		// The volume is taken: leave it out of the rest of this pass.
		pvs = without(pvs, pv)
	}
	return nil
}

func reservedFor(pvs []*corev1.PersistentVolume, cl *corev1.PersistentVolumeClaim) []*corev1.PersistentVolume {
	var out []*corev1.PersistentVolume
	for _, p := range pvs {
		if ref := p.Spec.ClaimRef; ref != nil && ref.Namespace == cl.Namespace && ref.Name == cl.Name {
			out = append(out, p)
		}
	}
	return out
}

func without(pvs []*corev1.PersistentVolume, pv *corev1.PersistentVolume) []*corev1.PersistentVolume {
	var out []*corev1.PersistentVolume
	for _, p := range pvs {
		if p.Name != pv.Name {
			out = append(out, p)
		}
	}
	return out
}

func (c *Controller) waitsForConsumer(cl *corev1.PersistentVolumeClaim) bool {
	name := volumematch.ClassName(cl.Spec.StorageClassName)
	if name == "" {
		return false
	}
	sc, err := c.classes.Get(name)
	if err != nil {
		return false
	}
	mode := sc.VolumeBindingMode
	return mode != nil && *mode == storagev1.VolumeBindingWaitForFirstConsumer && cl.Annotations[annSelectedNode] == ""
}

// bind writes the claim reference on the volume, then the volume name on
// the claim, then both statuses, as upstream's binder does.
func (c *Controller) bind(ctx context.Context, pv *corev1.PersistentVolume, cl *corev1.PersistentVolumeClaim) error {
	v := pv.DeepCopy()
	v.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: cl.Namespace, Name: cl.Name, UID: cl.UID, ResourceVersion: cl.ResourceVersion}
	v, err := c.client.CoreV1().PersistentVolumes().Update(ctx, v, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	v.Status.Phase = corev1.VolumeBound
	if _, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, v, metav1.UpdateOptions{}); err != nil {
		return err
	}
	claim := cl.DeepCopy()
	claim.Spec.VolumeName = pv.Name
	if claim.Annotations == nil {
		claim.Annotations = map[string]string{}
	}
	claim.Annotations[annBindCompleted] = "yes"
	claim.Annotations[annBoundByCtrl] = "yes"
	claim, err = c.client.CoreV1().PersistentVolumeClaims(cl.Namespace).Update(ctx, claim, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	claim.Status.Phase = corev1.ClaimBound
	claim.Status.AccessModes = pv.Spec.AccessModes
	claim.Status.Capacity = pv.Spec.Capacity
	if _, err := c.client.CoreV1().PersistentVolumeClaims(cl.Namespace).UpdateStatus(ctx, claim, metav1.UpdateOptions{}); err != nil {
		return err
	}
	c.recorder.Eventf(claim, corev1.EventTypeNormal, "Bound", "Bound to volume %s", pv.Name)
	return nil
}

// release marks a volume whose claim is gone Released and then, when its
// reclaim policy is Delete, deletes it: Released first, as upstream, so the
// pv-protection controller sees it unbound and lets it go.
func (c *Controller) release(ctx context.Context, pv *corev1.PersistentVolume) error {
	if pv.Status.Phase != corev1.VolumeReleased {
		v := pv.DeepCopy()
		v.Status.Phase = corev1.VolumeReleased
		_, err := c.client.CoreV1().PersistentVolumes().UpdateStatus(ctx, v, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		return nil
	}
	err := c.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
