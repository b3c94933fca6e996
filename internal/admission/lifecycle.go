package admission

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var namespacesGVR = corev1.SchemeGroupVersion.WithResource("namespaces")

// namespaceLifecycle is upstream's NamespaceLifecycle: nothing is created
// in a namespace that does not exist or is being deleted, and the
// namespaces the cluster itself needs are never deleted.
type namespaceLifecycle struct{ objects Objects }

func (*namespaceLifecycle) Handles(op Operation) bool { return op == Create || op == Delete }

// immortal are the namespaces upstream refuses to delete.
var immortal = map[string]bool{metav1.NamespaceDefault: true, metav1.NamespaceSystem: true, metav1.NamespacePublic: true}

func (p *namespaceLifecycle) Validate(_ context.Context, a *Attributes) error {
	if a.Operation == Delete && a.Is(namespacesGVR) && immortal[a.Name] {
		return a.forbidden(errors.New("this namespace may not be deleted"))
	}
	return nil
}

func (p *namespaceLifecycle) Admit(ctx context.Context, a *Attributes) error {
	if a.Operation != Create || a.Namespace == "" {
		return nil
	}
	o, err := p.objects.Get(ctx, namespacesGVR, "", a.Namespace)
	if apierrors.IsNotFound(err) {
		return apierrors.NewNotFound(corev1.Resource("namespaces"), a.Namespace)
	}
	if err != nil {
		return err
	}
	ns := o.(*corev1.Namespace)
	if ns.Status.Phase == corev1.NamespaceTerminating || ns.DeletionTimestamp != nil {
		err := apierrors.NewForbidden(a.Resource.GroupResource(), "", fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns.Name))
		err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause, Message: fmt.Sprintf("namespace %s is being terminated", ns.Name), Field: "metadata.namespace"}}
		return err
	}
	return nil
}
