package kubelet

import (
	"context"
	"fmt"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

// TestTokenCache: a projected token is asked for once and reused until 80 %
// of its life has passed, then renewed; a pod's removal forgets it.
func TestTokenCache(t *testing.T) {
	n := newMemoryNode(t)
	asked := 0
	n.api.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		asked++
		req := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenRequest)
		if req.Spec.BoundObjectRef == nil || req.Spec.BoundObjectRef.Name != "p" {
			return true, nil, fmt.Errorf("token not bound to the pod: %+v", req.Spec.BoundObjectRef)
		}
		exp := metav1.NewTime(n.clk.Now().Add(time.Duration(*req.Spec.ExpirationSeconds) * time.Second))
		return true, &authnv1.TokenRequest{Status: authnv1.TokenRequestStatus{Token: fmt.Sprintf("token-%d", asked), ExpirationTimestamp: exp}}, nil
	})
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "a", UID: "u1"}, Spec: v1.PodSpec{ServiceAccountName: "app"}}
	proj := &v1.ServiceAccountTokenProjection{ExpirationSeconds: ptr.To[int64](3600), Path: "token"}
	get := func() string {
		t.Helper()
		tok, err := n.k.requestToken(context.Background(), pod, proj)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if tok := get(); tok != "token-1" {
		t.Fatalf("first token %q", tok)
	}
	n.clk.Step(40 * time.Minute)
	if tok := get(); tok != "token-1" || asked != 1 {
		t.Fatalf("after 40 of 60 minutes: %q, %d requests", tok, asked)
	}
	n.clk.Step(9 * time.Minute) // 49 minutes: past 80 %
	if tok := get(); tok != "token-2" || asked != 2 {
		t.Fatalf("after 49 of 60 minutes: %q, %d requests", tok, asked)
	}
	other := &v1.ServiceAccountTokenProjection{ExpirationSeconds: ptr.To[int64](3600), Audience: "vault", Path: "vault-token"}
	if _, err := n.k.requestToken(context.Background(), pod, other); err != nil || asked != 3 {
		t.Fatalf("another audience shares the token: %v, %d requests", err, asked)
	}
	n.k.tokens.forget(pod.UID)
	if tok := get(); tok != "token-4" {
		t.Fatalf("after the pod was forgotten: %q", tok)
	}
}
