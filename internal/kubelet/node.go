package kubelet

import (
	"bufio"
	"context"
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

// Node heartbeat settings, upstream's defaults.
const (
	leaseDuration      = 40 // seconds
	leaseRenewInterval = 10 * time.Second
	statusInterval     = 10 * time.Second
	// statusReportEvery bounds how long an unchanged status goes unwritten.
	statusReportEvery = 5 * time.Minute
)

// machine is what the node reports about the host, read once.
type machine struct {
	cpu, memory, storage resource.Quantity
	info                 v1.NodeSystemInfo
}

func readMachine(rootDir, runtimeVersion, kubeletVersion string) machine {
	m := machine{cpu: *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI)}
	if total, _ := meminfo()["MemTotal"]; total > 0 {
		m.memory = *resource.NewQuantity(total, resource.BinarySI)
	}
	var fs syscall.Statfs_t
	if syscall.Statfs(rootDir, &fs) == nil {
		m.storage = *resource.NewQuantity(int64(fs.Blocks)*fs.Bsize, resource.BinarySI)
	}
	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	m.info = v1.NodeSystemInfo{
		MachineID:               readTrim("/etc/machine-id"),
		SystemUUID:              readTrim("/sys/class/dmi/id/product_uuid"),
		BootID:                  readTrim("/proc/sys/kernel/random/boot_id"),
		KernelVersion:           utsString(uts.Release[:]),
		OSImage:                 osImage(),
		ContainerRuntimeVersion: runtimeVersion,
		KubeletVersion:          kubeletVersion,
		KubeProxyVersion:        "",
		OperatingSystem:         goruntime.GOOS,
		Architecture:            goruntime.GOARCH,
	}
	return m
}

func readTrim(p string) string {
	b, _ := os.ReadFile(p)
	return strings.TrimSpace(string(b))
}

func utsString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

func osImage() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return "Linux"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

// meminfo returns /proc/meminfo in bytes.
func meminfo() map[string]int64 {
	out := map[string]int64{}
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		out[k] = n
	}
	return out
}

// pressure is the node's resource pressure, measured against eviction
// thresholds.
type pressure struct{ memory, disk, pid bool }

// nodeConditions are the four conditions the kubelet owns, with upstream's
// reasons and messages; transition times carry over from prev when the
// status did not change.
func nodeConditions(prev []v1.NodeCondition, p pressure, runtimeErr error, now metav1.Time) []v1.NodeCondition {
	cond := func(t v1.NodeConditionType, bad bool, okReason, okMsg, badReason, badMsg string) v1.NodeCondition {
		c := v1.NodeCondition{Type: t, Status: v1.ConditionFalse, Reason: okReason, Message: okMsg, LastHeartbeatTime: now, LastTransitionTime: now}
		if bad {
			c.Status, c.Reason, c.Message = v1.ConditionTrue, badReason, badMsg
		}
		for _, o := range prev {
			if o.Type == t && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		return c
	}
	ready := cond(v1.NodeReady, true, "", "", "KubeletReady", "kubelet is posting ready status")
	if runtimeErr != nil {
		ready.Status, ready.Reason, ready.Message = v1.ConditionFalse, "KubeletNotReady", "container runtime is down: "+runtimeErr.Error()
		for _, o := range prev {
			if o.Type == v1.NodeReady && o.Status == ready.Status {
				ready.LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	return []v1.NodeCondition{
		cond(v1.NodeMemoryPressure, p.memory, "KubeletHasSufficientMemory", "kubelet has sufficient memory available", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
		cond(v1.NodeDiskPressure, p.disk, "KubeletHasNoDiskPressure", "kubelet has no disk pressure", "KubeletHasDiskPressure", "kubelet has disk pressure"),
		cond(v1.NodePIDPressure, p.pid, "KubeletHasSufficientPID", "kubelet has sufficient PID available", "KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
		ready,
	}
}

// capacity returns capacity and allocatable (capacity minus reserved).
func (k *Kubelet) capacity() (v1.ResourceList, v1.ResourceList) {
	capacity := v1.ResourceList{
		v1.ResourceCPU:              k.machine.cpu,
		v1.ResourceMemory:           k.machine.memory,
		v1.ResourceEphemeralStorage: k.machine.storage,
		v1.ResourcePods:             *resource.NewQuantity(int64(k.cfg.MaxPods), resource.DecimalSI),
	}
	alloc := v1.ResourceList{}
	for name, q := range capacity {
		q = q.DeepCopy()
		if r, ok := k.cfg.Reserved[name]; ok {
			q.Sub(r)
			if q.Sign() < 0 {
				q.Set(0)
			}
		}
		alloc[name] = q
	}
	return capacity, alloc
}

// keepExtended adds to the kubelet's own capacity and allocatable the
// extended resources (example.com/widget) that others advertise by
// patching the Node's status, as upstream's kubelet keeps them: it measures
// only native resources, and overwriting the rest took a device or test
// resource away from the scheduler. Allocatable defaults to the capacity.
func keepExtended(cur v1.NodeStatus, capacity, alloc v1.ResourceList) (v1.ResourceList, v1.ResourceList) {
	for name, q := range cur.Capacity {
		if _, ours := capacity[name]; ours || !isExtendedResource(name) {
			continue
		}
		capacity[name] = q.DeepCopy()
		if a, ok := cur.Allocatable[name]; ok {
			alloc[name] = a.DeepCopy()
		} else {
			alloc[name] = q.DeepCopy()
		}
	}
	return capacity, alloc
}

// isExtendedResource: a domain-qualified name outside kubernetes.io, and
// not a quota's "requests." name (upstream's rule).
func isExtendedResource(name v1.ResourceName) bool {
	n := string(name)
	return strings.Contains(n, "/") && !strings.Contains(n, "kubernetes.io/") && !strings.HasPrefix(n, "requests.")
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
			Capacity: capacity, Allocatable: alloc, Addresses: k.nodeAddresses(), NodeInfo: k.machine.info,
			Conditions:      nodeConditions(nil, k.currentPressure(), nil, now),
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
	next.Status.Capacity, next.Status.Allocatable = keepExtended(node.Status, capacity, alloc)
	next.Status.Addresses = k.nodeAddresses()
	next.Status.NodeInfo = k.machine.info
	next.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(k.cfg.Port)
	next.Status.Conditions = mergeNodeConditions(node.Status.Conditions, nodeConditions(node.Status.Conditions, k.currentPressure(), runtimeErr, now))
	next.Status.Images = k.imageList(ctx)
	if !force && !statusChanged(node, next) && now.Sub(k.lastStatusReport) < statusReportEvery {
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

// mergeNodeConditions keeps conditions other components own (for example
// NetworkUnavailable) and replaces the kubelet's.
func mergeNodeConditions(old, ours []v1.NodeCondition) []v1.NodeCondition {
	out := append([]v1.NodeCondition(nil), ours...)
	for _, c := range old {
		switch c.Type {
		case v1.NodeReady, v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure:
		default:
			out = append(out, c)
		}
	}
	return out
}

// statusChanged compares everything but heartbeat times.
func statusChanged(a, b *v1.Node) bool {
	strip := func(n *v1.Node) v1.NodeStatus {
		s := *n.Status.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
		return s
	}
	sa, sb := strip(a), strip(b)
	return !equalJSON(sa, sb)
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
