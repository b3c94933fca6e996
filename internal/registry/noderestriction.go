package registry

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/authz"
)

// NodeRestriction, as upstream's admission plugin: what a node agent
// writes is about itself. It may create only mirror pods bound to itself
// and change only the status of its own pods; create only its own Node and
// never set labels under node-restriction.kubernetes.io/ (they steer
// workloads to trusted nodes); and publish only its own DNS endpoint
// slice. Requests by anyone else pass untouched.

// restrictedLabelPrefix is the label namespace only admins set on Nodes.
const restrictedLabelPrefix = "node-restriction.kubernetes.io/"

// mirrorAnnotation marks a static pod's mirror in the API.
const mirrorAnnotation = "kubernetes.io/config.mirror"

func nodeRestriction(ctx context.Context, _ *Registry, obj, old runtime.Object) error {
	u, ok := auth.UserFrom(ctx)
	if !ok {
		return nil
	}
	node, isNode := authz.NodeOf(u)
	if !isNode {
		return nil
	}
	deny := func(gr, name, format string, args ...any) error {
		return apierrors.NewForbidden(schema.ParseGroupResource(gr), name, fmt.Errorf("node %q "+format, append([]any{node}, args...)...))
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		if old == nil {
			if _, mirror := o.Annotations[mirrorAnnotation]; !mirror {
				return deny("pods", o.Name, "can only create mirror pods")
			}
			if o.Spec.NodeName != node {
				return deny("pods", o.Name, "can only create pods with spec.nodeName set to itself")
			}
			return nil
		}
		if prev := old.(*corev1.Pod); prev.Spec.NodeName != node {
			return deny("pods", o.Name, "can only update pod status for pods with spec.nodeName set to itself")
		}
	case *corev1.Node:
		if o.Name != node {
			return deny("nodes", o.Name, "is not allowed to modify node %q", o.Name)
		}
		var was map[string]string
		if old != nil {
			was = old.(*corev1.Node).Labels
		}
		for k, v := range o.Labels {
			if strings.HasPrefix(k, restrictedLabelPrefix) && (was == nil || was[k] != v) {
				return deny("nodes", o.Name, "is not allowed to modify labels: %s", k)
			}
		}
		for k := range was {
			if _, still := o.Labels[k]; !still && strings.HasPrefix(k, restrictedLabelPrefix) {
				return deny("nodes", o.Name, "is not allowed to modify labels: %s", k)
			}
		}
	case *discoveryv1.EndpointSlice:
		if o.Namespace != authz.DNSNamespace || o.Name != authz.DNSSlicePrefix+node {
			return deny("endpointslices.discovery.k8s.io", o.Name, "may only publish its own DNS endpoint slice %s/%s%s", authz.DNSNamespace, authz.DNSSlicePrefix, node)
		}
	}
	return nil
}
