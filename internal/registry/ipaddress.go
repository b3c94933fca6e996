package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/storage"
)

// Labels upstream's ClusterIP allocator puts on the IPAddress objects it
// creates; clients (and the conformance suite) select by them.
const (
	ipFamilyLabel  = "ipaddress.kubernetes.io/ip-family"
	managedByLabel = "ipaddress.kubernetes.io/managed-by"
	ipAllocatorID  = "ipallocator.k8s.io"
)

// legacyClusterIPPrefix is where skiff before IPAddress records kept its
// ClusterIP allocations, one key per address holding "namespace/name".
const legacyClusterIPPrefix = "/registry/skiff/allocations/clusterips/"

// ipAddressRecords keep each ClusterIP allocation as the IPAddress object
// named by the address, whose parentRef is the Service holding it. A user's
// own IPAddress object therefore reserves its address too, as upstream.
type ipAddressRecords struct {
	store *storage.Store
	now   func() time.Time
}

// errNotHolder ends a release whose address another owner holds.
var errNotHolder = errors.New("address held by another owner")

func (r ipAddressRecords) claim(ctx context.Context, v, owner string) (string, error) {
	_, err := r.store.Create(ctx, v, newServiceIPAddress(v, owner, r.now()))
	if err == nil {
		return "", nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	holder, err := r.holder(ctx, v)
	if err == nil && holder == "" {
		// Released between the create and the read: try once more later.
		return "", fmt.Errorf("address %s changed hands, retry", v)
	}
	return holder, err
}

func (r ipAddressRecords) holder(ctx context.Context, v string) (string, error) {
	obj, err := r.store.Get(ctx, v)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return ipAddressHolder(obj.(*networkingv1.IPAddress)), nil
}

func (r ipAddressRecords) release(ctx context.Context, v, owner string) error {
	_, err := r.store.GuaranteedUpdate(ctx, v, func(cur runtime.Object) (runtime.Object, error) {
		if cur == nil || ipAddressHolder(cur.(*networkingv1.IPAddress)) != owner {
			return nil, errNotHolder
		}
		return nil, nil
	})
	if errors.Is(err, errNotHolder) || apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// newServiceIPAddress is the record of address v held by the Service owner
// ("namespace/name"), as upstream's allocator writes it.
func newServiceIPAddress(v, owner string, now time.Time) *networkingv1.IPAddress {
	ns, name, _ := strings.Cut(owner, "/")
	return &networkingv1.IPAddress{
		TypeMeta: metav1.TypeMeta{APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "IPAddress"},
		ObjectMeta: metav1.ObjectMeta{
			Name: v, UID: types.UID(uuid.NewString()), CreationTimestamp: metav1.NewTime(now.Truncate(time.Second)),
			Labels: map[string]string{ipFamilyLabel: "IPv4", managedByLabel: ipAllocatorID},
		},
		Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{Resource: "services", Namespace: ns, Name: name}},
	}
}

// ipAddressHolder is the owner an IPAddress records: "namespace/name" of
// a Service, or a name no Service can have for anything else.
func ipAddressHolder(ip *networkingv1.IPAddress) string {
	if p := ip.Spec.ParentRef; p != nil && p.Group == "" && p.Resource == "services" {
		return p.Namespace + "/" + p.Name
	}
	return "ipaddress:" + ip.Name
}

// MigrateClusterIPs moves ClusterIP allocations from the keys skiff kept
// before IPAddress records into IPAddress objects, so a data dir of an
// older skiff keeps its Services' addresses reserved. It returns how many
// it moved; running it again finds nothing to move.
func (g *Registry) MigrateClusterIPs(ctx context.Context, client *clientv3.Client) (int, error) {
	resp, err := client.Get(ctx, legacyClusterIPPrefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("read legacy cluster IP allocations: %w", err)
	}
	for _, kv := range resp.Kvs {
		ip, owner := strings.TrimPrefix(string(kv.Key), legacyClusterIPPrefix), string(kv.Value)
		if holder, err := g.IPs.records.claim(ctx, ip, owner); err != nil {
			return 0, fmt.Errorf("migrate cluster IP %s of %s: %w", ip, owner, err)
		} else if holder != "" && holder != owner {
			g.Log.Warn("legacy cluster IP allocation conflicts with an IPAddress object; the object wins", "ip", ip, "legacy_owner", owner, "holder", holder)
		}
		if _, err := client.Delete(ctx, string(kv.Key)); err != nil {
			return 0, fmt.Errorf("remove legacy cluster IP allocation %s: %w", ip, err)
		}
	}
	return len(resp.Kvs), nil
}
