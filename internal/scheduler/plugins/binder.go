package plugins

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
)

// DefaultBinder binds through the pods/binding subresource.
type DefaultBinder struct{ h framework.Handle }

var _ framework.BindPlugin = (*DefaultBinder)(nil)

// Name implements Plugin.
func (*DefaultBinder) Name() string { return DefaultBinderName }

// Bind implements BindPlugin.
func (b *DefaultBinder) Bind(ctx context.Context, _ *framework.CycleState, pod *corev1.Pod, node string) *framework.Status {
	binding := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}
	if err := b.h.Client().CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
		return framework.AsStatus(fmt.Errorf("bind %s/%s to %s: %w", pod.Namespace, pod.Name, node, err))
	}
	return nil
}

func isGone(err error) bool { return apierrors.IsNotFound(err) || apierrors.IsConflict(err) }

// PatchPodCondition sets one status condition with a strategic merge
// patch on the status subresource.
func PatchPodCondition(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, cond corev1.PodCondition) error {
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": pod.UID},
		"status":   map[string]any{"conditions": []corev1.PodCondition{cond}},
	})
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

// ClearNomination removes a pod's nominatedNodeName.
func ClearNomination(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) error {
	if pod.Status.NominatedNodeName == "" {
		return nil
	}
	_, err := cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, []byte(`{"status":{"nominatedNodeName":null}}`), metav1.PatchOptions{}, "status")
	return err
}
