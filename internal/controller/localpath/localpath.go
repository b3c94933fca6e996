// Package localpath is skiff's built-in dynamic provisioner: a claim of a
// class whose provisioner is skiff.io/local-path gets a volume that is a
// directory on the node the scheduler chose for its first pod. The node's
// agent creates the directory when a pod mounts it and removes it once the
// volume is deleted.
package localpath

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/skiff-sh/skiff/internal/work"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/volumematch"
)

// Names the provisioner, its volumes and the agent share.
const (
	Provisioner = "skiff.io/local-path"
	// ParamPath is the class parameter naming the directory on each node
	// under which volumes are made.
	ParamPath = "path"
	// AnnProvisionedBy marks volumes a provisioner made (upstream's name).
	AnnProvisionedBy  = "pv.kubernetes.io/provisioned-by"
	annSelectedNode   = "volume.kubernetes.io/selected-node"
	annStorageProvisr = "volume.kubernetes.io/storage-provisioner"
)

// DefaultClass is the StorageClass a new cluster starts with: the default
// class, WaitForFirstConsumer (a volume lives where its first pod runs),
// volumes deleted with their claims, made under dir on each node.
func DefaultClass(dir string) *storagev1.StorageClass {
	return &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: "local-path", Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner:       Provisioner,
		Parameters:        map[string]string{ParamPath: dir},
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
}

// VolumeName is the name of the volume provisioned for a claim (upstream's
// pvc-<claim uid>).
func VolumeName(claim *corev1.PersistentVolumeClaim) string { return "pvc-" + string(claim.UID) }

// needsVolume says whether the claim waits for this provisioner, and on
// which node; a reason is given when it can never be provisioned.
func needsVolume(claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass) (node string, ok bool, problem string) {
	if class == nil || class.Provisioner != Provisioner || claim.Spec.VolumeName != "" || claim.DeletionTimestamp != nil || claim.Status.Phase == corev1.ClaimBound {
		return "", false, ""
	}
	if class.VolumeBindingMode == nil || *class.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
		return "", false, "local-path volumes need volumeBindingMode WaitForFirstConsumer: a directory lives on one node"
	}
	if claim.Spec.Selector != nil {
		return "", false, "claim Selector is not supported by the local-path provisioner"
	}
	node = claim.Annotations[annSelectedNode]
	return node, node != "", ""
}

// volumeFor is the PersistentVolume for a claim on node: a hostPath
// directory named after the volume under the class's path, pinned to the
// node, pre-bound to the claim so the binder pairs them.
func volumeFor(claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass, node string) *corev1.PersistentVolume {
	name := VolumeName(claim)
	reclaim := corev1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		reclaim = *class.ReclaimPolicy
	}
	size := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{AnnProvisionedBy: Provisioner}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   claim.Spec.AccessModes,
			VolumeMode:                    claim.Spec.VolumeMode,
			StorageClassName:              class.Name,
			PersistentVolumeReclaimPolicy: reclaim,
			MountOptions:                  class.MountOptions,
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: filepath.Join(class.Parameters[ParamPath], name), Type: ptr.To(corev1.HostPathDirectoryOrCreate)}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
			}}}},
		},
	}
}

// Controller provisions local-path volumes.
type Controller struct {
	client   kubernetes.Interface
	pvcs     corelisters.PersistentVolumeClaimLister
	pvs      corelisters.PersistentVolumeLister
	classes  storagelisters.StorageClassLister
	synced   []cache.InformerSynced
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
	log      *slog.Logger
}

// New registers the controller's informer handlers.
func New(cc *controller.Context) (controller.Controller, error) {
	pvc, pv, sc := cc.Informers.Core().V1().PersistentVolumeClaims(), cc.Informers.Core().V1().PersistentVolumes(), cc.Informers.Storage().V1().StorageClasses()
	c := &Controller{
		client: cc.Client, pvcs: pvc.Lister(), pvs: pv.Lister(), classes: sc.Lister(),
		synced:   []cache.InformerSynced{pvc.Informer().HasSynced, pv.Informer().HasSynced, sc.Informer().HasSynced},
		queue:    work.NewQueue[string]("localpath"),
		recorder: cc.Recorder(Provisioner),
		log:      cc.Log.With("controller", "local-path-provisioner"),
	}
	_, err := pvc.Informer().AddEventHandler(work.OnChange(func(obj any) {
		if key, ok := work.KeyOf(obj); ok {
			c.queue.Add(key)
		}
	}))
	return c, err
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, _ := cache.SplitMetaNamespaceKey(key)
	claim, err := c.pvcs.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	className := volumematch.ClassName(claim.Spec.StorageClassName)
	if className == "" {
		return nil
	}
	class, err := c.classes.Get(className)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	node, ok, problem := needsVolume(claim, class)
	if problem != "" {
		c.recorder.Event(claim, corev1.EventTypeWarning, "ProvisioningFailed", problem)
		return nil
	}
	if !ok {
		return nil
	}
	if _, err := c.pvs.Get(VolumeName(claim)); err == nil {
		return nil // made already; the binder pairs them
	}
	c.recorder.Eventf(claim, corev1.EventTypeNormal, "Provisioning", "External provisioner is provisioning volume for claim %q", key)
	pv := volumeFor(claim, class, node)
	if _, err := c.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		c.recorder.Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed", "failed to provision volume: %v", err)
		return fmt.Errorf("provision volume for %s: %w", key, err)
	}
	c.recorder.Eventf(claim, corev1.EventTypeNormal, "ProvisioningSucceeded", "Successfully provisioned volume %s", pv.Name)
	return nil
}
