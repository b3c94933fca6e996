package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// A default-deny NetworkPolicy blocks every client of a pod; an allow rule
// then lets one labelled client through, directly and through the pod's
// Service, while the other stays blocked; without policies both pass.
func TestNetworkPolicy(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	createPod(t, webPod(ns, "web-1", "node-"+hyphenated(cl.nodeIP)))
	friend := busyboxPod(ns, "friend", "while true; do sleep 1; done")
	friend.Labels = map[string]string{"role": "friend"}
	createPod(t, friend)
	createPod(t, busyboxPod(ns, "stranger", "while true; do sleep 1; done"))
	web := waitRunningReady(t, ns, "web-1")
	waitRunningReady(t, ns, "friend")
	waitRunningReady(t, ns, "stranger")
	svc, err := cl.client.CoreV1().Services(ns).Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       v1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []v1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	direct := "http://" + web.Status.PodIP + ":8080/"
	viaService := "http://" + svc.Spec.ClusterIP + "/"

	reaches := func(client, url string, want bool) {
		t.Helper()
		poll.Eventually(t, 20*time.Second, func() error {
			out, err := fetchFromPod(ns, client, url)
			if got := err == nil && out == "web-1"; got != want {
				return fmt.Errorf("%s to %s: reached=%v (%q, %v), want reached=%v", client, url, got, out, err, want)
			}
			return nil
		})
	}
	reaches("friend", direct, true)
	reaches("stranger", direct, true)

	pols := cl.client.NetworkingV1().NetworkPolicies(ns)
	if _, err := pols.Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default-deny"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	reaches("friend", direct, false)
	reaches("stranger", direct, false)

	if _, err := pols.Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-friend"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "friend"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To(intstr.FromString("http"))}},
			}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	reaches("friend", direct, true)
	reaches("friend", viaService, true)
	reaches("stranger", direct, false)
	reaches("stranger", viaService, false)

	// A bad CIDR is refused by the API server.
	_, err = pols.Create(ctx, &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "bad"},
		Spec: networkingv1.NetworkPolicySpec{Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/33"}}},
		}}},
	}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "10.0.0.0/33") {
		t.Errorf("a NetworkPolicy with CIDR 10.0.0.0/33: %v, want 422 Invalid naming the CIDR", err)
	}

	for _, name := range []string{"default-deny", "allow-friend"} {
		if err := pols.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	reaches("stranger", direct, true)
}
