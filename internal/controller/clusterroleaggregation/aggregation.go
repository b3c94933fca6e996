// Package clusterroleaggregation keeps the rules of every aggregated
// ClusterRole (one with an aggregationRule, such as admin, edit and view)
// the union of the ClusterRoles its selectors pick, as upstream's
// clusterrole-aggregation controller: a CRD's installer labels a role
// rbac.authorization.k8s.io/aggregate-to-edit and every editor gets it.
package clusterroleaggregation

import (
	"context"
	"log/slog"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	rbaclisters "k8s.io/client-go/listers/rbac/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/work"
)

// Controller recomputes aggregated ClusterRoles.
type Controller struct {
	client kubernetes.Interface
	roles  rbaclisters.ClusterRoleLister
	synced cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]
	log    *slog.Logger
}

// New registers the controller's handlers: any ClusterRole change may
// change an aggregate, so every aggregated role is looked at again.
func New(cc *controller.Context) (controller.Controller, error) {
	inf := cc.Informers.Rbac().V1().ClusterRoles()
	c := &Controller{client: cc.Client, roles: inf.Lister(), synced: inf.Informer().HasSynced,
		queue: work.NewQueue[string]("clusterrole-aggregation"), log: cc.Log.With("controller", "clusterrole-aggregation")}
	all := func(any) {
		roles, err := c.roles.List(labels.Everything())
		if err != nil {
			return
		}
		for _, r := range roles {
			if r.AggregationRule != nil {
				c.queue.Add(r.Name)
			}
		}
	}
	_, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    all,
		UpdateFunc: func(_, o any) { all(o) },
		DeleteFunc: all,
	})
	return c, err
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced)
}

func (c *Controller) sync(ctx context.Context, name string) error {
	role, err := c.roles.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil || role.AggregationRule == nil {
		return err
	}
	all, err := c.roles.List(labels.Everything())
	if err != nil {
		return err
	}
	rules := authz.Aggregate(role, all, Matches)
	if apiequality.Semantic.DeepEqual(rules, role.Rules) || (len(rules) == 0 && len(role.Rules) == 0) {
		return nil
	}
	next := role.DeepCopy()
	next.Rules = rules
	_, err = c.client.RbacV1().ClusterRoles().Update(ctx, next, metav1.UpdateOptions{FieldManager: "clusterrole-aggregation-controller"})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		c.queue.Add(name)
		return nil
	}
	return err
}

// Matches applies a label selector to a role's labels (an empty or
// invalid selector picks nothing).
func Matches(sel metav1.LabelSelector, l map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(&sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(l))
}
