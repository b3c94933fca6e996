package replicaset

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/controller"
)

// Kind adapts a ReplicaSet-like resource to the controller, which works on
// apps/v1 ReplicaSets: ReplicaSets as they are, ReplicationControllers
// converted (as upstream runs one controller for both).
type Kind struct {
	Name      string // queue and log name
	Component string // event source
	GVK       schema.GroupVersionKind
	Informer  cache.SharedIndexInformer
	Get       func(ns, name string) (*appsv1.ReplicaSet, error)
	List      func(ns string) ([]*appsv1.ReplicaSet, error)
	// Fresh reads the object from the API server, not the cache.
	Fresh        func(ctx context.Context, ns, name string) (*appsv1.ReplicaSet, error)
	UpdateStatus func(ctx context.Context, rs *appsv1.ReplicaSet, st appsv1.ReplicaSetStatus) error
	// EventObject is what events are recorded against.
	EventObject func(rs *appsv1.ReplicaSet) runtime.Object
}

func replicaSets(cc *controller.Context) Kind {
	inf := cc.Informers.Apps().V1().ReplicaSets()
	lister := inf.Lister()
	return Kind{
		Name: "replicaset", Component: "replicaset-controller",
		GVK:      appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
		Informer: inf.Informer(),
		Get:      func(ns, name string) (*appsv1.ReplicaSet, error) { return lister.ReplicaSets(ns).Get(name) },
		List:     func(ns string) ([]*appsv1.ReplicaSet, error) { return lister.ReplicaSets(ns).List(labels.Everything()) },
		Fresh: func(ctx context.Context, ns, name string) (*appsv1.ReplicaSet, error) {
			return cc.Client.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
		},
		UpdateStatus: func(ctx context.Context, rs *appsv1.ReplicaSet, st appsv1.ReplicaSetStatus) error {
			upd := rs.DeepCopy()
			upd.Status = st
			_, err := cc.Client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
			return err
		},
		EventObject: func(rs *appsv1.ReplicaSet) runtime.Object { return rs },
	}
}

func replicationControllers(cc *controller.Context) Kind {
	inf := cc.Informers.Core().V1().ReplicationControllers()
	lister := inf.Lister()
	return Kind{
		Name: "replicationcontroller", Component: "replication-controller",
		GVK:      corev1.SchemeGroupVersion.WithKind("ReplicationController"),
		Informer: inf.Informer(),
		Get: func(ns, name string) (*appsv1.ReplicaSet, error) {
			rc, err := lister.ReplicationControllers(ns).Get(name)
			if err != nil {
				return nil, err
			}
			return fromRC(rc), nil
		},
		List: func(ns string) ([]*appsv1.ReplicaSet, error) {
			rcs, err := lister.ReplicationControllers(ns).List(labels.Everything())
			out := make([]*appsv1.ReplicaSet, 0, len(rcs))
			for _, rc := range rcs {
				out = append(out, fromRC(rc))
			}
			return out, err
		},
		Fresh: func(ctx context.Context, ns, name string) (*appsv1.ReplicaSet, error) {
			rc, err := cc.Client.CoreV1().ReplicationControllers(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return fromRC(rc), nil
		},
		UpdateStatus: func(ctx context.Context, rs *appsv1.ReplicaSet, st appsv1.ReplicaSetStatus) error {
			rc, err := lister.ReplicationControllers(rs.Namespace).Get(rs.Name)
			if err != nil {
				return err
			}
			upd := rc.DeepCopy()
			upd.Status = toRCStatus(st)
			_, err = cc.Client.CoreV1().ReplicationControllers(rs.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{})
			return err
		},
		EventObject: func(rs *appsv1.ReplicaSet) runtime.Object {
			return &corev1.ReplicationController{ObjectMeta: rs.ObjectMeta}
		},
	}
}

// fromRC views a ReplicationController as a ReplicaSet: its map selector
// becomes matchLabels; a missing template becomes an empty one.
func fromRC(rc *corev1.ReplicationController) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: *rc.ObjectMeta.DeepCopy(),
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        rc.Spec.Replicas,
			MinReadySeconds: rc.Spec.MinReadySeconds,
			Selector:        &metav1.LabelSelector{MatchLabels: rc.Spec.Selector},
		},
		Status: appsv1.ReplicaSetStatus{
			Replicas: rc.Status.Replicas, FullyLabeledReplicas: rc.Status.FullyLabeledReplicas, ReadyReplicas: rc.Status.ReadyReplicas,
			AvailableReplicas: rc.Status.AvailableReplicas, ObservedGeneration: rc.Status.ObservedGeneration,
		},
	}
	if rc.Spec.Template != nil {
		rs.Spec.Template = *rc.Spec.Template.DeepCopy()
	}
	for _, c := range rc.Status.Conditions {
		rs.Status.Conditions = append(rs.Status.Conditions, appsv1.ReplicaSetCondition{
			Type: appsv1.ReplicaSetConditionType(c.Type), Status: c.Status, LastTransitionTime: c.LastTransitionTime, Reason: c.Reason, Message: c.Message,
		})
	}
	if rs.Spec.Replicas == nil {
		rs.Spec.Replicas = ptr.To[int32](1)
	}
	return rs
}

func toRCStatus(st appsv1.ReplicaSetStatus) corev1.ReplicationControllerStatus {
	out := corev1.ReplicationControllerStatus{
		Replicas: st.Replicas, FullyLabeledReplicas: st.FullyLabeledReplicas, ReadyReplicas: st.ReadyReplicas,
		AvailableReplicas: st.AvailableReplicas, ObservedGeneration: st.ObservedGeneration,
	}
	for _, c := range st.Conditions {
		out.Conditions = append(out.Conditions, corev1.ReplicationControllerCondition{
			Type: corev1.ReplicationControllerConditionType(c.Type), Status: c.Status, LastTransitionTime: c.LastTransitionTime, Reason: c.Reason, Message: c.Message,
		})
	}
	return out
}
