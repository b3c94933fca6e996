package controller

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// tokenServer answers TokenRequests with numbered tokens of the asked life.
func tokenServer(clk *clocktesting.FakeClock) (*fake.Clientset, *int) {
	cs := fake.NewClientset()
	issued := 0
	cs.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		req := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenRequest)
		issued++
		out := req.DeepCopy()
		out.Status = authnv1.TokenRequestStatus{Token: fmt.Sprintf("token-%d", issued),
			ExpirationTimestamp: metav1.NewTime(clk.Now().Add(time.Duration(*req.Spec.ExpirationSeconds) * time.Second))}
		return true, out, nil
	})
	return cs, &issued
}

func TestAccountTokens(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cs, issued := tokenServer(clk)
	a := &accountTokens{root: cs, namespace: "kube-system", name: "job-controller", clock: clk}

	tok, err := a.Token(ctx)
	if err != nil || tok != "token-1" {
		t.Fatalf("first token = %q, %v", tok, err)
	}
	if _, err := cs.CoreV1().ServiceAccounts("kube-system").Get(ctx, "job-controller", metav1.GetOptions{}); err != nil {
		t.Fatalf("the ServiceAccount was not made: %v", err)
	}
	clk.Step(47 * time.Minute) // under 80% of the hour
	if tok, _ := a.Token(ctx); tok != "token-1" || *issued != 1 {
		t.Errorf("after 47m: token %q, %d issued; want the first one reused", tok, *issued)
	}
	clk.Step(2 * time.Minute) // past 80%
	if tok, _ := a.Token(ctx); tok != "token-2" {
		t.Errorf("after 49m: token %q, want a new one", tok)
	}
	a.Forget("token-1") // an older token refused: the held one stays
	if tok, _ := a.Token(ctx); tok != "token-2" {
		t.Errorf("forgetting an old token dropped the current one: %q", tok)
	}
	a.Forget("token-2")
	if tok, _ := a.Token(ctx); tok != "token-3" {
		t.Errorf("after a refusal: token %q, want a new one", tok)
	}
}

type recordingTransport struct {
	auth   []string
	status int
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.auth = append(r.auth, req.Header.Get("Authorization"))
	return &http.Response{StatusCode: r.status, Body: http.NoBody, Request: req}, nil
}

// The transport sends the account's token and asks for a new one after a 401.
func TestBearerTransport(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	cs, _ := tokenServer(clk)
	next := &recordingTransport{status: http.StatusUnauthorized}
	rt := bearer{tokens: &accountTokens{root: cs, namespace: "kube-system", name: "x", clock: clk}, next: next}
	for range 2 {
		req, _ := http.NewRequest(http.MethodGet, "https://127.0.0.1/api", nil)
		if _, err := rt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if req.Header.Get("Authorization") != "" {
			t.Error("the caller's request was changed")
		}
	}
	if want := []string{"Bearer token-1", "Bearer token-2"}; fmt.Sprint(next.auth) != fmt.Sprint(want) {
		t.Errorf("sent %v, want %v", next.auth, want)
	}
}
