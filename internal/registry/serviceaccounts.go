package registry

import (
	"context"
	"fmt"
	"slices"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/admission"
	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/satoken"
)

// Tokens is what the registry needs to issue and review ServiceAccount
// tokens (the API server sets it).
type Tokens struct {
	Key *satoken.Key
	// Audiences are the API server's own: a TokenRequest without any gets
	// these, and a TokenReview without any is checked against them.
	Audiences []string
	// ExtendExpiration: a pod's kube-api-access token (asked for 3607
	// seconds) is signed valid for a year and carries the hour as its
	// warnafter claim, as upstream's --service-account-extend-token-expiration:
	// a client that fails to reload its token keeps working while the node
	// refreshes it hourly anyway.
	ExtendExpiration bool
	// Authn authenticates a TokenReview's token as the API server would.
	Authn interface {
		AuthenticateToken(token string, audiences []string) (auth.User, bool)
	}
}

// Token expiry bounds, as upstream's: at least ten minutes, at most 2^32
// seconds; an hour when the request names none.
const (
	minTokenSeconds     = 600
	maxTokenSeconds     = 1 << 32
	defaultTokenSeconds = 3600
)

// tokenAction is serviceaccounts/token (TokenRequest): a token for the
// ServiceAccount, for the audiences asked, bound to a pod, Secret or node
// if asked, which it does not outlive.
var tokenAction = &Action{
	Kind:    authnv1.SchemeGroupVersion.WithKind("TokenRequest"),
	Verbs:   []string{"create"},
	New:     func() runtime.Object { return &authnv1.TokenRequest{} },
	Created: true,
	Act:     requestToken,
}

func requestToken(ctx context.Context, g *Registry, ns, name string, body func(runtime.Object) (runtime.Object, error), _ WriteOptions) (runtime.Object, error) {
	if g.Tokens == nil {
		return nil, apierrors.NewServiceUnavailable("service account tokens are not configured")
	}
	in, err := body(nil)
	if err != nil {
		return nil, err
	}
	req := in.(*authnv1.TokenRequest)
	gk := authnv1.SchemeGroupVersion.WithKind("TokenRequest").GroupKind()
	spec := field.NewPath("spec")
	var errs field.ErrorList
	exp := int64(defaultTokenSeconds)
	if req.Spec.ExpirationSeconds != nil {
		exp = *req.Spec.ExpirationSeconds
	}
	switch {
	case exp < minTokenSeconds:
		errs = append(errs, field.Invalid(spec.Child("expirationSeconds"), exp, "may not specify a duration less than 10 minutes"))
	case exp > maxTokenSeconds:
		errs = append(errs, field.TooLong(spec.Child("expirationSeconds"), exp, maxTokenSeconds))
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(gk, name, errs)
	}
	saObj, err := g.Get(ctx, g.Lookup(corev1.SchemeGroupVersion.WithResource("serviceaccounts")), ns, name)
	if err != nil {
		return nil, err
	}
	sa := saObj.(*corev1.ServiceAccount)
	now := g.Now()
	claims := satoken.Claims{Issuer: g.Tokens.Key.Issuer, Subject: satoken.Subject(ns, name), Audience: req.Spec.Audiences,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: now.Add(time.Duration(exp) * time.Second).Unix(), ID: string(uuid.NewUUID()),
		K8s: &satoken.Private{Namespace: ns, ServiceAccount: satoken.Ref{Name: name, UID: string(sa.UID)}}}
	if len(claims.Audience) == 0 {
		claims.Audience = g.Tokens.Audiences
	}
	if ref := req.Spec.BoundObjectRef; ref != nil {
		p := spec.Child("boundObjectRef")
		kinds := map[string]string{"Pod": "pods", "Secret": "secrets", "Node": "nodes"}
		resource, ok := kinds[ref.Kind]
		if !ok || (ref.APIVersion != "" && ref.APIVersion != "v1") {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot bind token for serviceaccount %q to object of type %s, Kind=%s", name, ref.APIVersion, ref.Kind))
		}
		if ref.Name == "" {
			return nil, apierrors.NewInvalid(gk, name, field.ErrorList{field.Required(p.Child("name"), "")})
		}
		objNS := ns
		if ref.Kind == "Node" {
			objNS = ""
		}
		obj, err := g.Get(ctx, g.Lookup(corev1.SchemeGroupVersion.WithResource(resource)), objNS, ref.Name)
		if err != nil {
			return nil, err
		}
		m := obj.(metav1.Object)
		if ref.UID != "" && ref.UID != m.GetUID() {
			return nil, apierrors.NewConflict(corev1.Resource(resource), ref.Name, fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record. The object might have been deleted and then recreated", ref.UID))
		}
		bound := &satoken.Ref{Name: ref.Name, UID: string(m.GetUID())}
		switch o := obj.(type) {
		case *corev1.Pod:
			claims.K8s.Pod = bound
			if sa := o.Spec.ServiceAccountName; sa != name {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("cannot bind token for serviceaccount %q to pod running with serviceaccount %q", name, sa))
			}
			// A pod's token also names the node it runs on.
			if o.Spec.NodeName != "" {
				if n, err := g.Get(ctx, g.Lookup(corev1.SchemeGroupVersion.WithResource("nodes")), "", o.Spec.NodeName); err == nil {
					claims.K8s.Node = &satoken.Ref{Name: o.Spec.NodeName, UID: string(n.(*corev1.Node).UID)}
				}
			}
		case *corev1.Secret:
			claims.K8s.Secret = bound
		case *corev1.Node:
			claims.K8s.Node = bound
		}
		// A bound token ends with its object anyway: its expiry is kept.
	}
	if g.Tokens.ExtendExpiration && claims.K8s.Pod != nil && exp == admission.APIAccessTokenSeconds &&
		!slices.ContainsFunc(claims.Audience, func(a string) bool { return !slices.Contains(g.Tokens.Audiences, a) }) {
		claims.K8s.WarnAfter = claims.Expiry
		claims.Expiry = now.Add(extendedTokenLife).Unix()
	}
	tok, err := g.Tokens.Key.Sign(claims)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	out := req.DeepCopy()
	out.Name, out.Namespace = name, ns
	out.CreationTimestamp = metav1.NewTime(now)
	out.Spec.Audiences = claims.Audience
	out.Spec.ExpirationSeconds = ptr.To(exp)
	out.Status = authnv1.TokenRequestStatus{Token: tok, ExpirationTimestamp: metav1.NewTime(now.Add(time.Duration(exp) * time.Second))}
	return out, nil
}

// tokenReview: is this token valid, and whose? (webhook authenticators,
// aggregated servers, anything that gets a token from a client).
func tokenReview(_ context.Context, g *Registry, _ string, in runtime.Object) (runtime.Object, error) {
	r := in.(*authnv1.TokenReview)
	if r.Spec.Token == "" {
		return nil, apierrors.NewInvalid(authnv1.SchemeGroupVersion.WithKind("TokenReview").GroupKind(), "", field.ErrorList{field.Required(field.NewPath("spec", "token"), "")})
	}
	if g.Tokens == nil || g.Tokens.Authn == nil {
		return nil, apierrors.NewServiceUnavailable("token review is not configured")
	}
	aud := r.Spec.Audiences
	if len(aud) == 0 {
		aud = g.Tokens.Audiences
	}
	u, ok := g.Tokens.Authn.AuthenticateToken(r.Spec.Token, aud)
	if !ok {
		r.Status = authnv1.TokenReviewStatus{Authenticated: false, Error: "[invalid bearer token, service account token has been invalidated]"}
		return r, nil
	}
	extra := map[string]authnv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = v
	}
	r.Status = authnv1.TokenReviewStatus{Authenticated: true, Audiences: aud,
		User: authnv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups, Extra: extra}}
	return r, nil
}

// extendedTokenLife is how long an extended kube-api-access token is
// signed valid for (upstream's one year).
const extendedTokenLife = 365 * 24 * time.Hour
