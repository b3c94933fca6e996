package controlplane

import (
	"context"
	"fmt"
	"strconv"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/controller/clusterroleaggregation"
	"github.com/skiff-sh/skiff/internal/flowcontrol"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// reconcilePolicy brings the default ClusterRoles and ClusterRoleBindings
// to what authz's bootstrap policy says (see authz.ReconcileClusterRole),
// fills the aggregated roles, and waits until the authorizers hold the
// result: a component that starts after bootstrap finds its permissions.
func reconcilePolicy(ctx context.Context, reg *registry.Registry, feed *policyFeed) error {
	roles := reg.Lookup(rbacv1.SchemeGroupVersion.WithResource("clusterroles"))
	bindings := reg.Lookup(rbacv1.SchemeGroupVersion.WithResource("clusterrolebindings"))
	last := map[string]int64{} // resource → the revision of its last write
	write := func(res *registry.Resource, name string, obj runtime.Object) error {
		out, _, err := reg.Update(ctx, res, "", name, func(cur runtime.Object) (runtime.Object, error) {
			if cur != nil {
				obj.(metav1.Object).SetResourceVersion(cur.(metav1.Object).GetResourceVersion())
			}
			return obj, nil
		}, registry.WriteOptions{FieldManager: "skiff-bootstrap"}, true)
		if err != nil {
			return fmt.Errorf("bootstrap policy %s %s: %w", res.Kind, name, err)
		}
		rv, _ := strconv.ParseInt(out.(metav1.Object).GetResourceVersion(), 10, 64)
		last[res.GVR.Resource] = max(last[res.GVR.Resource], rv)
		return nil
	}
	for _, want := range authz.ClusterRoles() {
		stored, err := getClusterRole(ctx, reg, roles, want.Name)
		if err != nil {
			return err
		}
		if next := authz.ReconcileClusterRole(stored, want); next != nil {
			if err := write(roles, want.Name, next); err != nil {
				return err
			}
		}
	}
	if err := aggregateAll(ctx, reg, roles, write, func() int64 { return last["clusterroles"] }); err != nil {
		return err
	}
	for _, want := range authz.ClusterRoleBindings() {
		obj, err := reg.Get(ctx, bindings, "", want.Name)
		var stored *rbacv1.ClusterRoleBinding
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return err
		default:
			stored = obj.(*rbacv1.ClusterRoleBinding)
		}
		next, recreate := authz.ReconcileClusterRoleBinding(stored, want)
		if next == nil {
			continue
		}
		if recreate {
			if _, _, err := reg.Delete(ctx, bindings, "", want.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			next.ResourceVersion = ""
		}
		if err := write(bindings, want.Name, next); err != nil {
			return err
		}
	}
	if err := reconcileNamespacedPolicy(ctx, reg); err != nil {
		return err
	}
	for _, name := range authz.Retired {
		for _, res := range []*registry.Resource{bindings, roles} {
			if err := deleteRetired(ctx, reg, res, name); err != nil {
				return err
			}
		}
	}
	for r, rv := range last {
		if err := feed.waitFor(ctx, r, rv); err != nil {
			return err
		}
	}
	return nil
}

// deleteRetired deletes a default object an earlier version made, unless
// a user took it over (it no longer carries the bootstrapping label).
func deleteRetired(ctx context.Context, reg *registry.Registry, res *registry.Resource, name string) error {
	obj, err := reg.Get(ctx, res, "", name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if obj.(metav1.Object).GetLabels()["kubernetes.io/bootstrapping"] != "rbac-defaults" {
		return nil
	}
	if _, _, err := reg.Delete(ctx, res, "", name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("retired bootstrap policy %s %s: %w", res.Kind, name, err)
	}
	return nil
}

func getClusterRole(ctx context.Context, reg *registry.Registry, res *registry.Resource, name string) (*rbacv1.ClusterRole, error) {
	obj, err := reg.Get(ctx, res, "", name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return obj.(*rbacv1.ClusterRole), nil
}

// aggregateAll writes the rules of every aggregated ClusterRole, repeating
// until nothing changes (admin aggregates edit, which aggregates view).
func aggregateAll(ctx context.Context, reg *registry.Registry, res *registry.Resource, write func(*registry.Resource, string, runtime.Object) error, written func() int64) error {
	for range 4 {
		// Each pass reads the cache: it must hold the writes so far.
		if err := reg.Cache(res).WaitFresh(ctx, written()); err != nil {
			return err
		}
		objs, _ := reg.Cache(res).Snapshot(storage.Filter{})
		all := make([]*rbacv1.ClusterRole, 0, len(objs))
		for _, o := range objs {
			all = append(all, o.Obj.(*rbacv1.ClusterRole))
		}
		changed := false
		for _, c := range all {
			if c.AggregationRule == nil {
				continue
			}
			rules := authz.Aggregate(c, all, clusterroleaggregation.Matches)
			if apiequality.Semantic.DeepEqual(rules, c.Rules) || (len(rules) == 0 && len(c.Rules) == 0) {
				continue
			}
			next := c.DeepCopy()
			next.Rules = rules
			if err := write(res, c.Name, next); err != nil {
				return err
			}
			changed = true
		}
		if !changed {
			return nil
		}
	}
	return nil
}

// reconcileFlowControl makes the bootstrap flow schemas and priority
// levels as upstream's configuration controller does: missing ones are
// created; one still annotated apf.kubernetes.io/autoupdate-spec: "true"
// gets its default spec back; the mandatory exempt and catch-all ones
// always do.
func reconcileFlowControl(ctx context.Context, reg *registry.Registry) error {
	gv := flowcontrolv1.SchemeGroupVersion
	type object interface {
		runtime.Object
		metav1.Object
	}
	sync := func(res *registry.Resource, want object, sameSpec func(runtime.Object) bool, setSpec func(runtime.Object) runtime.Object) error {
		cur, err := reg.Get(ctx, res, "", want.GetName())
		if apierrors.IsNotFound(err) {
			_, err = reg.Create(ctx, res, "", want, registry.WriteOptions{FieldManager: "api-priority-and-fairness-config-producer-v1"})
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		}
		if err != nil {
			return err
		}
		mandatory := want.GetName() == flowcontrol.Exempt || want.GetName() == flowcontrol.CatchAll
		if sameSpec(cur) || !mandatory && cur.(metav1.Object).GetAnnotations()[flowcontrol.AutoUpdate] != "true" {
			return nil
		}
		_, _, err = reg.Update(ctx, res, "", want.GetName(), func(cur runtime.Object) (runtime.Object, error) {
			return setSpec(cur), nil
		}, registry.WriteOptions{FieldManager: "api-priority-and-fairness-config-producer-v1"}, false)
		return err
	}
	pls := reg.Lookup(gv.WithResource("prioritylevelconfigurations"))
	for _, want := range flowcontrol.PriorityLevels() {
		if err := sync(pls, &want, func(cur runtime.Object) bool {
			return apiequality.Semantic.DeepEqual(cur.(*flowcontrolv1.PriorityLevelConfiguration).Spec, want.Spec)
		}, func(cur runtime.Object) runtime.Object {
			next := cur.(*flowcontrolv1.PriorityLevelConfiguration).DeepCopy()
			next.Spec = want.Spec
			return next
		}); err != nil {
			return fmt.Errorf("bootstrap priority level %s: %w", want.Name, err)
		}
	}
	fss := reg.Lookup(gv.WithResource("flowschemas"))
	for _, want := range flowcontrol.FlowSchemas() {
		if err := sync(fss, &want, func(cur runtime.Object) bool {
			return apiequality.Semantic.DeepEqual(cur.(*flowcontrolv1.FlowSchema).Spec, want.Spec)
		}, func(cur runtime.Object) runtime.Object {
			next := cur.(*flowcontrolv1.FlowSchema).DeepCopy()
			next.Spec = want.Spec
			return next
		}); err != nil {
			return fmt.Errorf("bootstrap flow schema %s: %w", want.Name, err)
		}
	}
	return nil
}

// reconcileNamespacedPolicy writes the default Roles and RoleBindings of
// kube-system as the cluster-wide ones are written.
func reconcileNamespacedPolicy(ctx context.Context, reg *registry.Registry) error {
	roles := reg.Lookup(rbacv1.SchemeGroupVersion.WithResource("roles"))
	bindings := reg.Lookup(rbacv1.SchemeGroupVersion.WithResource("rolebindings"))
	write := func(res *registry.Resource, ns, name string, obj runtime.Object) error {
		_, _, err := reg.Update(ctx, res, ns, name, func(cur runtime.Object) (runtime.Object, error) {
			if cur != nil {
				obj.(metav1.Object).SetResourceVersion(cur.(metav1.Object).GetResourceVersion())
			}
			return obj, nil
		}, registry.WriteOptions{FieldManager: "skiff-bootstrap"}, true)
		if err != nil {
			return fmt.Errorf("bootstrap policy %s %s/%s: %w", res.Kind, ns, name, err)
		}
		return nil
	}
	for _, want := range authz.Roles() {
		var stored *rbacv1.Role
		obj, err := reg.Get(ctx, roles, want.Namespace, want.Name)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return err
		default:
			stored = obj.(*rbacv1.Role)
		}
		if next := authz.ReconcileRole(stored, want); next != nil {
			if err := write(roles, want.Namespace, want.Name, next); err != nil {
				return err
			}
		}
	}
	for _, want := range authz.RoleBindings() {
		var stored *rbacv1.RoleBinding
		obj, err := reg.Get(ctx, bindings, want.Namespace, want.Name)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return err
		default:
			stored = obj.(*rbacv1.RoleBinding)
		}
		next, recreate := authz.ReconcileRoleBinding(stored, want)
		if next == nil {
			continue
		}
		if recreate {
			if _, _, err := reg.Delete(ctx, bindings, want.Namespace, want.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			next.ResourceVersion = ""
		}
		if err := write(bindings, want.Namespace, want.Name, next); err != nil {
			return err
		}
	}
	return nil
}
