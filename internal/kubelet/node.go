package kubelet

import (
	"context"
	"fmt"
	goruntime "runtime"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/kubelet/nodestatus"
)

// Node heartbeat settings, upstream's defaults.
const (
	leaseDuration      = 40 // seconds
	leaseRenewInterval = 10 * time.Second
	statusInterval     = 10 * time.Second
	// statusReportEvery bounds how long an unchanged status goes unwritten.
	statusReportEvery = 5 * time.Minute
)

// capacity returns capacity and allocatable (capacity minus reserved).
func (k *Kubelet) capacity() (v1.ResourceList, v1.ResourceList) {
	return nodestatus.Capacity(k.machine, k.cfg.MaxPods, k.cfg.Reserved)
}

func (k *Kubelet) nodeAddresses() []v1.NodeAddress {
	return []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: k.cfg.NodeIP.String()}, {Type: v1.NodeHostName, Address: k.cfg.Hostname}}
}

// registerNode creates the Node or, when it exists, brings its labels,
// addresses and capacity up to date (taints are only set at creation, as
// upstream does, so an operator's later edits stand).
func (k *Kubelet) registerNode(ctx context.Context) error {
	capacity, alloc := k.capacity()
	labels := map[string]string{
		v1.LabelHostname: k.cfg.NodeName, v1.LabelOSStable: goruntime.GOOS, v1.LabelArchStable: goruntime.GOARCH,
		"beta.kubernetes.io/os": goruntime.GOOS, "beta.kubernetes.io/arch": goruntime.GOARCH,
	}
	for key, v := range k.cfg.Labels {
		labels[key] = v
	}
	now := metav1.NewTime(k.clock.Now())
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName, Labels: labels,
			Annotations: map[string]string{"volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
		Spec: v1.NodeSpec{Taints: k.cfg.Taints, PodCIDR: k.cfg.PodCIDR},
		Status: v1.NodeStatus{
			Capacity: capacity, Allocatable: alloc, Addresses: k.nodeAddresses(), NodeInfo: k.machine.Info,
			Conditions:      nodestatus.Conditions(nil, k.currentPressure(), nil, now),
			DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(k.cfg.Port)}},
		},
	}
	created, err := k.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err == nil {
		k.setNode(created)
		k.lastStatusReport = now.Time
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register node %s: %w", k.cfg.NodeName, err)
	}
	existing, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("register node %s: %w", k.cfg.NodeName, err)
	}
	changed := false
	if existing.Labels == nil {
		existing.Labels = map[string]string{}
	}
	for key, v := range labels {
		if existing.Labels[key] != v {
			existing.Labels[key], changed = v, true
		}
	}
	if existing.Spec.PodCIDR == "" && k.cfg.PodCIDR != "" {
		existing.Spec.PodCIDR, existing.Spec.PodCIDRs, changed = k.cfg.PodCIDR, nil, true
	}
	if changed {
		if existing, err = k.client.CoreV1().Nodes().Update(ctx, existing, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update node %s labels: %w", k.cfg.NodeName, err)
		}
	}
	k.setNode(existing)
	return k.updateNodeStatus(ctx, true)
}

// updateNodeStatus writes the node's status when it changed or when the
// last report is older than statusReportEvery (force writes anyway). A
// conflict (the node lifecycle controller or an operator wrote the Node)
// is retried on a fresh read.
func (k *Kubelet) updateNodeStatus(ctx context.Context, force bool) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = k.tryUpdateNodeStatus(ctx, force); !apierrors.IsConflict(err) {
			return err
		}
		fresh, gerr := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("update node status: %w", gerr)
		}
		k.setNode(fresh)
	}
	return fmt.Errorf("update node status: %w", err)
}

func (k *Kubelet) tryUpdateNodeStatus(ctx context.Context, force bool) error {
	node := k.getNode()
	if node == nil {
		return nil
	}
	now := metav1.NewTime(k.clock.Now())
	capacity, alloc := k.capacity()
	var runtimeErr error
	if _, err := k.rt.Version(ctx, &cri.VersionRequest{}); err != nil {
		runtimeErr = err
	}
	next := node.DeepCopy()
	next.Status.Capacity, next.Status.Allocatable = nodestatus.KeepExtended(node.Status, capacity, alloc)
	next.Status.Addresses = k.nodeAddresses()
	next.Status.NodeInfo = k.machine.Info
	next.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(k.cfg.Port)
	next.Status.Conditions = nodestatus.MergeConditions(node.Status.Conditions, nodestatus.Conditions(node.Status.Conditions, k.currentPressure(), runtimeErr, now))
	next.Status.Images = k.imageList(ctx)
	if !force && !nodestatus.Changed(node, next) && now.Sub(k.lastStatusReport) < statusReportEvery {
		return nil
	}
	updated, err := k.client.CoreV1().Nodes().UpdateStatus(ctx, next, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		// Someone deleted the Node: register it again.
		return k.registerNode(ctx)
	}
	if err != nil {
		return err
	}
	k.lastStatusReport = now.Time
	k.setNode(updated)
	return nil
}

// imageList reports the images on the node (largest first, at most 50, as
// upstream's nodeStatusMaxImages).
func (k *Kubelet) imageList(ctx context.Context) []v1.ContainerImage {
	resp, err := k.rt.ListImages(ctx, &cri.ListImagesRequest{})
	if err != nil {
		return nil
	}
	var out []v1.ContainerImage
	for _, img := range resp.Images {
		names := append(append([]string(nil), img.RepoTags...), img.RepoDigests...)
		if len(names) == 0 {
			continue
		}
		out = append(out, v1.ContainerImage{Names: names, SizeBytes: int64(img.Size)})
	}
	sortImages(out)
	if len(out) > 50 {
		out = out[:50]
	}
	return out
}

// renewLease keeps kube-node-lease/<node> current: the heartbeat the node
// lifecycle controller watches.
func (k *Kubelet) renewLease(ctx context.Context) error {
	leases := k.client.CoordinationV1().Leases(v1.NamespaceNodeLease)
	now := metav1.NewMicroTime(k.clock.Now())
	lease, err := leases.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l := &coordv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName, Namespace: v1.NamespaceNodeLease},
			Spec:       coordv1.LeaseSpec{HolderIdentity: ptr.To(k.cfg.NodeName), LeaseDurationSeconds: ptr.To[int32](leaseDuration), RenewTime: &now},
		}
		if node := k.getNode(); node != nil {
			l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: types.UID(node.UID)}}
		}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.HolderIdentity = ptr.To(k.cfg.NodeName)
	lease.Spec.LeaseDurationSeconds = ptr.To[int32](leaseDuration)
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// heartbeat renews the lease every 10 s and checks the status as often.
func (k *Kubelet) heartbeat(ctx context.Context) {
	leaseTick := time.NewTicker(leaseRenewInterval)
	defer leaseTick.Stop()
	statusTick := time.NewTicker(statusInterval)
	defer statusTick.Stop()
	if err := k.renewLease(ctx); err != nil {
		k.log.Warn("renew node lease", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-leaseTick.C:
			if err := k.renewLease(ctx); err != nil && ctx.Err() == nil {
				k.log.Warn("renew node lease", "err", err)
			}
		case <-statusTick.C:
			if err := k.updateNodeStatus(ctx, false); err != nil && ctx.Err() == nil {
				k.log.Warn("node status", "err", err)
			}
		}
	}
}
