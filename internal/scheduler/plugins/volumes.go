package plugins

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	configv1 "k8s.io/kube-scheduler/config/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/volumematch"
)

// Volume binding rejections, as upstream words them.
const (
	ErrReasonBindConflict           = "node(s) didn't find available persistent volumes to bind"
	ErrReasonNodeConflict           = "node(s) had volume node affinity conflict"
	ErrReasonNotEnoughSpace         = "node(s) did not have enough free storage"
	ErrReasonPVNotExist             = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
	ErrReasonUnboundImmediate       = "pod has unbound immediate PersistentVolumeClaims"
	annSelectedNode                 = "volume.kubernetes.io/selected-node"
	noProvisioner                   = "kubernetes.io/no-provisioner"
	defaultVolumeBindTimeout  int64 = 600
)

// VolumeBinding places pods with PersistentVolumeClaims: bound claims
// restrict the node through their volume's node affinity; claims of
// WaitForFirstConsumer classes are matched to a free volume on the node or
// provisioned there, and bound in PreBind.
type VolumeBinding struct {
	h       framework.Handle
	timeout time.Duration
	mu      sync.Mutex
	// assumed maps volumes reserved by pods in flight to their claim.
	assumed map[string]string
}

var (
	_ framework.PreFilterPlugin = (*VolumeBinding)(nil)
	_ framework.FilterPlugin    = (*VolumeBinding)(nil)
	_ framework.ReservePlugin   = (*VolumeBinding)(nil)
	_ framework.PreBindPlugin   = (*VolumeBinding)(nil)
)

// NewVolumeBinding builds the plugin.
func NewVolumeBinding(h framework.Handle, args *configv1.VolumeBindingArgs) *VolumeBinding {
	t := defaultVolumeBindTimeout
	if args != nil && args.BindTimeoutSeconds != nil {
		t = *args.BindTimeoutSeconds
	}
	return &VolumeBinding{h: h, timeout: time.Duration(t) * time.Second, assumed: map[string]string{}}
}

// Name implements Plugin.
func (*VolumeBinding) Name() string { return VolumeBindingName }

// claimNames lists the claims a pod uses, including generic ephemeral
// volumes' claims.
func claimNames(pod *corev1.Pod) []string {
	var out []string
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			out = append(out, v.PersistentVolumeClaim.ClaimName)
		case v.Ephemeral != nil:
			out = append(out, pod.Name+"-"+v.Name)
		}
	}
	return out
}

type volumeState struct {
	bound []*corev1.PersistentVolume // nil entries: volume missing
	// delayed are unbound WaitForFirstConsumer claims.
	delayed []*corev1.PersistentVolumeClaim
	classes map[string]*storagev1.StorageClass
	pvs     []*corev1.PersistentVolume
	// chosen is filled by Reserve: claim key → volume name ("" to provision).
	chosen map[string]string
	node   string
}

func (s *volumeState) Clone() framework.StateData { return s }

const volumeKey framework.StateKey = "PreFilter" + VolumeBindingName

// PreFilter sorts the pod's claims into bound and waiting ones.
func (p *VolumeBinding) PreFilter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, _ []*framework.NodeInfo) (*framework.PreFilterResult, *framework.Status) {
	names := claimNames(pod.Pod)
	if len(names) == 0 {
		return nil, framework.NewStatus(framework.Skip)
	}
	l := p.h.Listers()
	st := &volumeState{classes: map[string]*storagev1.StorageClass{}}
	for _, name := range names {
		pvc, err := l.PVCs.PersistentVolumeClaims(pod.Pod.Namespace).Get(name)
		if apierrors.IsNotFound(err) {
			return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("persistentvolumeclaim %q not found", name))
		}
		if err != nil {
			return nil, framework.AsStatus(err)
		}
		if pvc.DeletionTimestamp != nil {
			return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, fmt.Sprintf("persistentvolumeclaim %q is being deleted", name))
		}
		if pvc.Spec.VolumeName != "" {
			pv, err := l.PVs.Get(pvc.Spec.VolumeName)
			if err != nil && !apierrors.IsNotFound(err) {
				return nil, framework.AsStatus(err)
			}
			st.bound = append(st.bound, pv)
			continue
		}
		class := volumematch.ClassName(pvc.Spec.StorageClassName)
		sc, err := l.StorageClasses.Get(class)
		if class == "" || err != nil || sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
			return nil, framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonUnboundImmediate)
		}
		st.classes[class] = sc
		st.delayed = append(st.delayed, pvc)
	}
	if len(st.delayed) > 0 {
		pvs, err := l.PVs.List(labels.Everything())
		if err != nil {
			return nil, framework.AsStatus(err)
		}
		st.pvs = pvs
	}
	state.Write(volumeKey, st)
	return nil, nil
}

// PreFilterExtensions implements PreFilterPlugin.
func (*VolumeBinding) PreFilterExtensions() framework.PreFilterExtensions { return nil }

func pvFitsNode(pv *corev1.PersistentVolume, node *corev1.Node) bool {
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return true
	}
	ns, err := nodeaffinity.NewNodeSelector(pv.Spec.NodeAffinity.Required)
	return err == nil && ns.Match(node)
}

func classAllowsNode(sc *storagev1.StorageClass, node *corev1.Node) bool {
	if len(sc.AllowedTopologies) == 0 {
		return true
	}
	for _, term := range sc.AllowedTopologies {
		ok := true
		for _, e := range term.MatchLabelExpressions {
			v, has := node.Labels[e.Key]
			if !has || !contains(e.Values, v) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// match picks, for each waiting claim, a free volume usable from node, or
// "" when the class can provision one there; ok is false when neither.
func (p *VolumeBinding) match(st *volumeState, node *corev1.Node) (map[string]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	chosen := map[string]string{}
	taken := map[string]bool{}
	for _, pvc := range st.delayed {
		key := pvc.Namespace + "/" + pvc.Name
		var pick *corev1.PersistentVolume
		for _, pv := range st.pvs {
			if taken[pv.Name] || (p.assumed[pv.Name] != "" && p.assumed[pv.Name] != key) {
				continue
			}
			if pv.Spec.ClaimRef == nil && pv.Status.Phase != corev1.VolumeAvailable && pv.Status.Phase != "" {
				continue
			}
			if !volumematch.Fits(pv, pvc) || !pvFitsNode(pv, node) {
				continue
			}
			if pick == nil || pv.Spec.Capacity.Storage().Cmp(*pick.Spec.Capacity.Storage()) < 0 {
				pick = pv
			}
		}
		if pick != nil {
			taken[pick.Name] = true
			chosen[key] = pick.Name
			continue
		}
		sc := st.classes[volumematch.ClassName(pvc.Spec.StorageClassName)]
		if sc == nil || sc.Provisioner == noProvisioner || !classAllowsNode(sc, node) {
			return nil, false
		}
		chosen[key] = ""
	}
	return chosen, true
}

// Filter implements FilterPlugin.
func (p *VolumeBinding) Filter(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	d, ok := state.Read(volumeKey)
	if !ok {
		return framework.AsStatus(errNoState(VolumeBindingName))
	}
	st := d.(*volumeState)
	for _, pv := range st.bound {
		if pv == nil {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonPVNotExist)
		}
		if !pvFitsNode(pv, node.Node()) {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonNodeConflict)
		}
	}
	if len(st.delayed) > 0 {
		if _, ok := p.match(st, node.Node()); !ok {
			return framework.NewStatus(framework.UnschedulableAndUnresolvable, ErrReasonBindConflict)
		}
	}
	return nil
}

// Reserve picks the volumes for the chosen node and holds them so that
// other pods in flight do not take them.
func (p *VolumeBinding) Reserve(_ context.Context, state *framework.CycleState, _ *corev1.Pod, nodeName string) *framework.Status {
	d, ok := state.Read(volumeKey)
	if !ok {
		return nil
	}
	st := d.(*volumeState)
	if len(st.delayed) == 0 {
		return nil
	}
	ni := p.h.Snapshot().Get(nodeName)
	if ni == nil {
		return framework.AsStatus(fmt.Errorf("node %q not in snapshot", nodeName))
	}
	chosen, ok := p.match(st, ni.Node())
	if !ok {
		return framework.NewStatus(framework.Unschedulable, ErrReasonBindConflict)
	}
	p.mu.Lock()
	for key, pv := range chosen {
		if pv != "" {
			p.assumed[pv] = key
		}
	}
	p.mu.Unlock()
	st.chosen, st.node = chosen, nodeName
	return nil
}

// Unreserve releases the held volumes.
func (p *VolumeBinding) Unreserve(_ context.Context, state *framework.CycleState, _ *corev1.Pod, _ string) {
	d, ok := state.Read(volumeKey)
	if !ok {
		return
	}
	p.release(d.(*volumeState))
}

func (p *VolumeBinding) release(st *volumeState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pv := range st.chosen {
		if pv != "" {
			delete(p.assumed, pv)
		}
	}
}

// PreBind reserves each chosen volume for its claim (claimRef) or asks for
// provisioning on the node (selected-node annotation), then waits until
// the binder has bound every claim.
func (p *VolumeBinding) PreBind(ctx context.Context, state *framework.CycleState, pod *corev1.Pod, nodeName string) *framework.Status {
	d, ok := state.Read(volumeKey)
	if !ok {
		return nil
	}
	st := d.(*volumeState)
	if len(st.delayed) == 0 {
		return nil
	}
	defer p.release(st)
	cs := p.h.Client()
	for _, pvc := range st.delayed {
		key := pvc.Namespace + "/" + pvc.Name
		if pvName := st.chosen[key]; pvName != "" {
			pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{})
			if err != nil {
				return framework.AsStatus(fmt.Errorf("get volume %s: %w", pvName, err))
			}
			if pv.Spec.ClaimRef == nil {
				pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID}
				if _, err := cs.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
					return framework.AsStatus(fmt.Errorf("reserve volume %s for claim %s: %w", pvName, key, err))
				}
			}
			continue
		}
		patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, annSelectedNode, nodeName)
		if _, err := cs.CoreV1().PersistentVolumeClaims(pvc.Namespace).Patch(ctx, pvc.Name, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
			return framework.AsStatus(fmt.Errorf("select node for claim %s: %w", key, err))
		}
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, p.timeout, true, func(context.Context) (bool, error) {
		for _, pvc := range st.delayed {
			cur, err := p.h.Listers().PVCs.PersistentVolumeClaims(pvc.Namespace).Get(pvc.Name)
			if err != nil {
				return false, nil
			}
			if cur.Status.Phase != corev1.ClaimBound {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return framework.AsStatus(fmt.Errorf("binding volumes: %w", err))
	}
	return nil
}

// EventsToRegister implements EnqueueExtensions.
func (*VolumeBinding) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		events(framework.PVCResource, framework.Add|framework.Update),
		events(framework.PVResource, framework.Add|framework.Update),
		events(framework.StorageClassResource, framework.Add|framework.Update),
		events(framework.NodeResource, framework.Add|framework.UpdateNodeLabel),
		events(framework.CSINodeResource, framework.Add|framework.Update),
	}
}

// VolumeRestrictions enforces ReadWriteOncePod claims (one pod in the
// cluster) and exclusive inline disks (one pod per node).
type VolumeRestrictions struct{ h framework.Handle }

var (
	_ framework.PreFilterPlugin = (*VolumeRestrictions)(nil)
	_ framework.FilterPlugin    = (*VolumeRestrictions)(nil)
)

// Volume restriction rejections.
const (
	ErrReasonDiskConflict             = "node(s) had no available disk"
	ErrReasonReadWriteOncePodConflict = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
)

// NewVolumeRestrictions builds the plugin.
func NewVolumeRestrictions(h framework.Handle) *VolumeRestrictions { return &VolumeRestrictions{h: h} }

// Name implements Plugin.
func (*VolumeRestrictions) Name() string { return VolumeRestrictionsName }

type restrictionsState struct {
	rwop      map[string]bool // claim keys with ReadWriteOncePod
	conflicts int
}

func (s *restrictionsState) Clone() framework.StateData {
	return &restrictionsState{rwop: s.rwop, conflicts: s.conflicts}
}

const restrictionsKey framework.StateKey = "PreFilter" + VolumeRestrictionsName

func hasExclusiveDisk(pod *corev1.Pod) bool {
	for _, v := range pod.Spec.Volumes {
		if v.GCEPersistentDisk != nil || v.AWSElasticBlockStore != nil || v.RBD != nil || v.ISCSI != nil {
			return true
		}
	}
	return false
}

// PreFilter counts pods already using the pod's ReadWriteOncePod claims.
func (p *VolumeRestrictions) PreFilter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, nodes []*framework.NodeInfo) (*framework.PreFilterResult, *framework.Status) {
	st := &restrictionsState{rwop: map[string]bool{}}
	for _, v := range pod.Pod.Spec.Volumes {
		if v.PersistentVolumeClaim == nil {
			continue
		}
		pvc, err := p.h.Listers().PVCs.PersistentVolumeClaims(pod.Pod.Namespace).Get(v.PersistentVolumeClaim.ClaimName)
		if err != nil {
			continue // VolumeBinding reports missing claims
		}
		if contains(accessModes(pvc), string(corev1.ReadWriteOncePod)) {
			st.rwop[pod.Pod.Namespace+"/"+pvc.Name] = true
		}
	}
	if len(st.rwop) == 0 && !hasExclusiveDisk(pod.Pod) {
		return nil, framework.NewStatus(framework.Skip)
	}
	for _, ni := range nodes {
		for key := range st.rwop {
			st.conflicts += ni.PVCRefCounts[key]
		}
	}
	state.Write(restrictionsKey, st)
	if st.conflicts > 0 {
		return nil, framework.NewStatus(framework.Unschedulable, ErrReasonReadWriteOncePodConflict)
	}
	return nil, nil
}

func accessModes(pvc *corev1.PersistentVolumeClaim) []string {
	var out []string
	for _, m := range pvc.Spec.AccessModes {
		out = append(out, string(m))
	}
	return out
}

// PreFilterExtensions implements PreFilterPlugin.
func (p *VolumeRestrictions) PreFilterExtensions() framework.PreFilterExtensions { return p }

func (p *VolumeRestrictions) update(state *framework.CycleState, other *framework.PodInfo, delta int) *framework.Status {
	d, ok := state.Read(restrictionsKey)
	if !ok {
		return nil
	}
	st := d.(*restrictionsState)
	for _, v := range other.Pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && st.rwop[other.Pod.Namespace+"/"+v.PersistentVolumeClaim.ClaimName] {
			st.conflicts += delta
		}
	}
	return nil
}

// AddPod implements PreFilterExtensions.
func (p *VolumeRestrictions) AddPod(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, add *framework.PodInfo, _ *framework.NodeInfo) *framework.Status {
	return p.update(state, add, 1)
}

// RemovePod implements PreFilterExtensions.
func (p *VolumeRestrictions) RemovePod(_ context.Context, state *framework.CycleState, _ *framework.PodInfo, remove *framework.PodInfo, _ *framework.NodeInfo) *framework.Status {
	return p.update(state, remove, -1)
}

// Filter rejects a node where an exclusive disk is already mounted, and
// any node while a ReadWriteOncePod claim is in use.
func (p *VolumeRestrictions) Filter(_ context.Context, state *framework.CycleState, pod *framework.PodInfo, node *framework.NodeInfo) *framework.Status {
	if d, ok := state.Read(restrictionsKey); ok && d.(*restrictionsState).conflicts > 0 {
		return framework.NewStatus(framework.Unschedulable, ErrReasonReadWriteOncePodConflict)
	}
	for _, v := range pod.Pod.Spec.Volumes {
		for _, ep := range node.Pods {
			for _, ev := range ep.Pod.Spec.Volumes {
				if diskConflict(&v, &ev) {
					return framework.NewStatus(framework.Unschedulable, ErrReasonDiskConflict)
				}
			}
		}
	}
	return nil
}

// diskConflict reports two uses of the same exclusive disk; read-only
// GCE and RBD mounts may share.
func diskConflict(a, b *corev1.Volume) bool {
	switch {
	case a.GCEPersistentDisk != nil && b.GCEPersistentDisk != nil:
		return a.GCEPersistentDisk.PDName == b.GCEPersistentDisk.PDName && !(a.GCEPersistentDisk.ReadOnly && b.GCEPersistentDisk.ReadOnly)
	case a.AWSElasticBlockStore != nil && b.AWSElasticBlockStore != nil:
		return a.AWSElasticBlockStore.VolumeID == b.AWSElasticBlockStore.VolumeID
	case a.ISCSI != nil && b.ISCSI != nil:
		return a.ISCSI.IQN == b.ISCSI.IQN && !(a.ISCSI.ReadOnly && b.ISCSI.ReadOnly)
	case a.RBD != nil && b.RBD != nil:
		shared := false
		for _, m := range a.RBD.CephMonitors {
			shared = shared || contains(b.RBD.CephMonitors, m)
		}
		return shared && a.RBD.RBDPool == b.RBD.RBDPool && a.RBD.RBDImage == b.RBD.RBDImage && !(a.RBD.ReadOnly && b.RBD.ReadOnly)
	}
	return false
}

// EventsToRegister implements EnqueueExtensions.
func (*VolumeRestrictions) EventsToRegister() []framework.ClusterEvent {
	return []framework.ClusterEvent{
		events(framework.PodResource, framework.Delete),
		events(framework.PVCResource, framework.Add|framework.Update),
	}
}
