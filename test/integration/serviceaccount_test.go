package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/test/poll"
)

// tokenClient is a client that authenticates with a bearer token only.
func (s *server) tokenClient(token string) *kubernetes.Clientset {
	cfg := rest.AnonymousClientConfig(s.restConfig())
	cfg.BearerToken = token
	return kubernetes.NewForConfigOrDie(cfg)
}

// claimsOf decodes a JWT's claims (no verification: the server did that).
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestServiceAccountTokens: TokenRequest (kubectl create token), bound
// tokens that end with their object, TokenReview, legacy token Secrets and
// the OIDC discovery documents, as upstream.
func TestServiceAccountTokens(t *testing.T) {
	s := startServer(t)
	admin := s.client()
	ctx := context.Background()
	s.mustKubectl("create", "namespace", "apps")
	s.mustKubectl("create", "serviceaccount", "robot", "-n", "apps")
	s.mustKubectl("create", "rolebinding", "robot-views", "--clusterrole=view", "--serviceaccount=apps:robot", "-n", "apps")

	// kubectl create token: a token of the ServiceAccount, for the API.
	tok := strings.TrimSpace(s.mustKubectl("create", "token", "robot", "-n", "apps", "--duration", "20m"))
	c := claimsOf(t, tok)
	if c["iss"] != "https://kubernetes.default.svc.cluster.local" || c["sub"] != "system:serviceaccount:apps:robot" {
		t.Errorf("claims %v", c)
	}
	if exp, iat := c["exp"].(float64), c["iat"].(float64); exp-iat != 1200 {
		t.Errorf("lifetime %v s, want 1200", exp-iat)
	}
	robot := s.tokenClient(tok)
	poll.Eventually(t, 10*time.Second, func() error {
		_, err := robot.CoreV1().Pods("apps").List(ctx, metav1.ListOptions{})
		return err
	})
	if _, err := robot.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("robot listing pods in default: %v, want Forbidden", err)
	}
	who, err := robot.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil || who.Status.UserInfo.Username != "system:serviceaccount:apps:robot" || !strings.Contains(strings.Join(who.Status.UserInfo.Groups, ","), "system:serviceaccounts:apps") {
		t.Errorf("whoami as robot: %v %+v", err, who)
	}

	// Bad requests, as upstream answers them.
	_, _, err = s.kubectl("create", "token", "robot", "-n", "apps", "--duration", "5m")
	if err == nil {
		t.Error("a 5 minute token was issued (minimum 10 minutes)")
	}
	if _, err := admin.CoreV1().ServiceAccounts("apps").CreateToken(ctx, "nobody", &authnv1.TokenRequest{}, metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a token of a missing ServiceAccount: %v, want NotFound", err)
	}
	if _, err := admin.CoreV1().ServiceAccounts("apps").CreateToken(ctx, "robot", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		BoundObjectRef: &authnv1.BoundObjectReference{Kind: "ConfigMap", APIVersion: "v1", Name: "x"}}}, metav1.CreateOptions{}); !apierrors.IsBadRequest(err) {
		t.Errorf("a token bound to a ConfigMap: %v, want BadRequest", err)
	}

	// A token bound to a Secret ends with the Secret.
	sec, err := admin.CoreV1().Secrets("apps").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "anchor"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bound := strings.TrimSpace(s.mustKubectl("create", "token", "robot", "-n", "apps", "--bound-object-kind", "Secret", "--bound-object-name", "anchor"))
	if k8s := claimsOf(t, bound)["kubernetes.io"].(map[string]any); k8s["secret"].(map[string]any)["uid"] != string(sec.UID) {
		t.Errorf("bound claims %v", k8s)
	}
	boundClient := s.tokenClient(bound)
	if _, err := boundClient.CoreV1().Pods("apps").List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("the Secret-bound token: %v", err)
	}
	if err := admin.CoreV1().Secrets("apps").Delete(ctx, "anchor", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Within the API server's ten seconds of reusing a verdict.
	poll.Eventually(t, settle, func() error {
		if _, err := boundClient.CoreV1().Pods("apps").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
			return fmt.Errorf("after its Secret was deleted: %v, want Unauthorized", err)
		}
		return nil
	})

	// A pod's kube-api-access token (3607 s) is signed for a year with the
	// hour as warnafter (--service-account-extend-token-expiration); any
	// other life is signed as asked.
	pod, err := admin.CoreV1().Pods("apps").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "holder"},
		Spec: corev1.PodSpec{ServiceAccountName: "robot", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		seconds  int64
		extended bool
	}{{3607, true}, {3600, false}} {
		asked := time.Now()
		tr, err := admin.CoreV1().ServiceAccounts("apps").CreateToken(ctx, "robot", &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To(c.seconds), BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "holder", UID: pod.UID}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d := tr.Status.ExpirationTimestamp.Sub(asked); d < time.Duration(c.seconds-5)*time.Second || d > time.Duration(c.seconds+5)*time.Second {
			t.Errorf("%d s token: status expires in %v", c.seconds, d)
		}
		claims := claimsOf(t, tr.Status.Token)
		exp := time.Unix(int64(claims["exp"].(float64)), 0).Sub(asked)
		warn, hasWarn := claims["kubernetes.io"].(map[string]any)["warnafter"]
		if c.extended {
			if exp < 364*24*time.Hour || !hasWarn || time.Unix(int64(warn.(float64)), 0).Sub(asked) > time.Duration(c.seconds+5)*time.Second {
				t.Errorf("kube-api-access token: exp in %v, warnafter %v; want a year and the hour", exp, warn)
			}
		} else if exp > time.Duration(c.seconds+5)*time.Second || hasWarn {
			t.Errorf("%d s token: exp in %v, warnafter %v; want as asked", c.seconds, exp, warn)
		}
	}

	// TokenReview: valid for the API's audience, not for another.
	review := func(token string, aud ...string) authnv1.TokenReviewStatus {
		r, err := admin.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token, Audiences: aud}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token review: %v", err)
		}
		return r.Status
	}
	if st := review(tok); !st.Authenticated || st.User.Username != "system:serviceaccount:apps:robot" {
		t.Errorf("review of a good token: %+v", st)
	}
	if st := review(tok, "vault"); st.Authenticated {
		t.Errorf("a token for the API was accepted for vault: %+v", st)
	}
	if st := review(bound); st.Authenticated {
		t.Errorf("the token of a deleted Secret reviewed as valid: %+v", st)
	}
	vault := strings.TrimSpace(s.mustKubectl("create", "token", "robot", "-n", "apps", "--audience", "vault"))
	if st := review(vault, "vault"); !st.Authenticated || len(st.Audiences) != 1 || st.Audiences[0] != "vault" {
		t.Errorf("review of a vault token for vault: %+v", st)
	}
	if _, err := s.tokenClient(vault).CoreV1().Pods("apps").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("a vault token used on the API: %v, want Unauthorized", err)
	}

	// A legacy token Secret is filled, works, and ends with its account.
	if _, err := admin.CoreV1().Secrets("apps").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "robot-legacy",
		Annotations: map[string]string{corev1.ServiceAccountNameKey: "robot"}}, Type: corev1.SecretTypeServiceAccountToken}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var legacy string
	poll.Eventually(t, settle, func() error {
		sec, err := admin.CoreV1().Secrets("apps").Get(ctx, "robot-legacy", metav1.GetOptions{})
		if err != nil || len(sec.Data["token"]) == 0 || len(sec.Data["ca.crt"]) == 0 || string(sec.Data["namespace"]) != "apps" {
			return fmt.Errorf("not filled yet: %v", err)
		}
		legacy = string(sec.Data["token"])
		return nil
	})
	if claimsOf(t, legacy)["iss"] != "kubernetes/serviceaccount" {
		t.Errorf("legacy claims %v", claimsOf(t, legacy))
	}
	if _, err := s.tokenClient(legacy).CoreV1().Pods("apps").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("the legacy token: %v", err)
	}
	s.mustKubectl("delete", "serviceaccount", "robot", "-n", "apps")
	poll.Eventually(t, settle, func() error {
		if _, err := s.tokenClient(tok).CoreV1().Pods("apps").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
			return fmt.Errorf("the token of a deleted ServiceAccount: %v, want Unauthorized", err)
		}
		if _, err := admin.CoreV1().Secrets("apps").Get(ctx, "robot-legacy", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the legacy Secret of a deleted ServiceAccount: %v", err)
		}
		return nil
	})

	// OIDC discovery, for those who verify skiff's tokens themselves.
	var disc map[string]any
	if err := json.Unmarshal([]byte(s.mustKubectl("get", "--raw", "/.well-known/openid-configuration")), &disc); err != nil || disc["issuer"] != "https://kubernetes.default.svc.cluster.local" || !strings.HasSuffix(fmt.Sprint(disc["jwks_uri"]), "/openid/v1/jwks") {
		t.Errorf("discovery: %v %v", disc, err)
	}
	var jwks struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal([]byte(s.mustKubectl("get", "--raw", "/openid/v1/jwks")), &jwks); err != nil || len(jwks.Keys) != 1 || jwks.Keys[0]["alg"] != "RS256" || jwks.Keys[0]["kty"] != "RSA" {
		t.Errorf("jwks: %+v %v", jwks, err)
	}
}

// TestServiceAccountAdmission: pods get the default ServiceAccount and the
// kube-api-access volume in every container, unless the pod or its
// ServiceAccount opts out; a missing ServiceAccount is refused.
func TestServiceAccountAdmission(t *testing.T) {
	s := startServer(t)
	admin := s.client()
	ctx := context.Background()
	pod := func(name, sa string, automount *bool) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{ServiceAccountName: sa, AutomountServiceAccountToken: automount,
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox"}}, Containers: []corev1.Container{{Name: "a", Image: "busybox"}, {Name: "b", Image: "busybox"}}}}
	}
	p, err := admin.CoreV1().Pods("default").Create(ctx, pod("plain", "", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.ServiceAccountName != "default" || len(p.Spec.Volumes) != 1 || !strings.HasPrefix(p.Spec.Volumes[0].Name, "kube-api-access-") {
		t.Fatalf("admitted pod: sa %q volumes %+v", p.Spec.ServiceAccountName, p.Spec.Volumes)
	}
	proj := p.Spec.Volumes[0].Projected
	if proj == nil || len(proj.Sources) != 3 || proj.Sources[0].ServiceAccountToken == nil || *proj.Sources[0].ServiceAccountToken.ExpirationSeconds != 3607 ||
		proj.Sources[1].ConfigMap == nil || proj.Sources[1].ConfigMap.Name != "kube-root-ca.crt" || proj.Sources[2].DownwardAPI == nil {
		t.Errorf("kube-api-access sources: %+v", proj)
	}
	for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
		if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/var/run/secrets/kubernetes.io/serviceaccount" || !c.VolumeMounts[0].ReadOnly {
			t.Errorf("container %s mounts %+v", c.Name, c.VolumeMounts)
		}
	}
	off, err := admin.CoreV1().Pods("default").Create(ctx, pod("off", "", ptr.To(false)), metav1.CreateOptions{})
	if err != nil || len(off.Spec.Volumes) != 0 {
		t.Errorf("automountServiceAccountToken false on the pod: %v %+v", err, off)
	}
	if _, err := admin.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "quiet"}, AutomountServiceAccountToken: ptr.To(false)}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	quiet, err := admin.CoreV1().Pods("default").Create(ctx, pod("quiet", "quiet", nil), metav1.CreateOptions{})
	if err != nil || len(quiet.Spec.Volumes) != 0 {
		t.Errorf("automount false on the ServiceAccount: %v %+v", err, quiet)
	}
	if over, err := admin.CoreV1().Pods("default").Create(ctx, pod("over", "quiet", ptr.To(true)), metav1.CreateOptions{}); err != nil || len(over.Spec.Volumes) != 1 {
		t.Errorf("the pod's true overrides its ServiceAccount's false: %v %+v", err, over)
	}
	_, err = admin.CoreV1().Pods("default").Create(ctx, pod("ghost", "ghost", nil), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `error looking up service account default/ghost: serviceaccount "ghost" not found`) {
		t.Errorf("a pod of a missing ServiceAccount: %v", err)
	}
}
