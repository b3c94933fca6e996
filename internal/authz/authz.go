// Package authz decides whether a request's user may do what the request
// asks: the request's attributes, the authorizers (RBAC, the Node
// authorizer, AlwaysAllow) and their union in --authorization-mode order,
// and the Forbidden message upstream writes. The decisions are pure
// functions of the attributes and the policy the authorizers hold; the API
// server feeds them the policy objects as they change.
package authz

import (
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-sh/skiff/internal/auth"
)

// Attributes are what one request asks, as upstream's authorizer
// attributes: a resource request (verb, group, resource, subresource,
// namespace, name) or a non-resource one (verb and path).
type Attributes struct {
	User        auth.User
	Verb        string
	IsResource  bool
	APIGroup    string
	APIVersion  string
	Resource    string
	Subresource string
	Namespace   string
	Name        string
	// Path is the URL path of a non-resource request.
	Path string
}

// Decision is an authorizer's answer.
type Decision int

const (
	// NoOpinion leaves the request to the next authorizer; if none
	// allows it, it is denied.
	NoOpinion Decision = iota
	Allow
	Deny
)

// Authorizer decides one request. The reason explains a denial (or why a
// rule could not be evaluated) and is appended to the Forbidden message.
type Authorizer interface {
	Authorize(a Attributes) (Decision, string)
}

// Func adapts a function to Authorizer.
type Func func(a Attributes) (Decision, string)

func (f Func) Authorize(a Attributes) (Decision, string) { return f(a) }

// Masters is the group that is always allowed, before any mode (the admin
// kubeconfig's group, upstream's privileged group).
const Masters = "system:masters"

// Union asks each authorizer in order; the first Allow or Deny decides.
// The reasons of those without an opinion are joined, as upstream does.
type Union []Authorizer

func (u Union) Authorize(a Attributes) (Decision, string) {
	if slices.Contains(a.User.Groups, Masters) {
		return Allow, ""
	}
	var reasons []string
	for _, z := range u {
		d, reason := z.Authorize(a)
		if d != NoOpinion {
			return d, reason
		}
		if reason != "" {
			reasons = append(reasons, reason)
		}
	}
	return NoOpinion, strings.Join(reasons, "\n")
}

// AlwaysAllow allows everything (--authorization-mode=AlwaysAllow, for
// experiments only).
var AlwaysAllow = Func(func(Attributes) (Decision, string) { return Allow, "" })

// Forbidden is the 403 Status of a denied request, worded as upstream's:
// `pods is forbidden: User "alice" cannot list resource "pods" in API
// group "" in the namespace "b"`.
func Forbidden(a Attributes, reason string) *apierrors.StatusError {
	msg := forbiddenMessage(a)
	if reason != "" {
		msg += ": " + reason
	}
	gr := schema.GroupResource{Group: a.APIGroup, Resource: a.Resource}
	if !a.IsResource {
		gr = schema.GroupResource{}
	}
	return apierrors.NewForbidden(gr, a.Name, fmt.Errorf("%s", msg))
}

func forbiddenMessage(a Attributes) string {
	if !a.IsResource {
		return fmt.Sprintf("User %q cannot %s path %q", a.User.Name, a.Verb, a.Path)
	}
	resource := a.Resource
	if a.Subresource != "" {
		resource += "/" + a.Subresource
	}
	if a.Namespace != "" {
		return fmt.Sprintf("User %q cannot %s resource %q in API group %q in the namespace %q", a.User.Name, a.Verb, resource, a.APIGroup, a.Namespace)
	}
	return fmt.Sprintf("User %q cannot %s resource %q in API group %q at the cluster scope", a.User.Name, a.Verb, resource, a.APIGroup)
}

// Component tells skiff's own control-plane identities (the scheduler, the
// controller manager and its controllers' kube-system ServiceAccounts) from
// users: a refusal of one of them is a gap in the bootstrap policy, worth a
// line in the log (ComponentRefused), where a user's is routine.
func Component(u auth.User) bool {
	return u.Name == SchedulerUser || u.Name == ControllerManagerUser ||
		strings.HasPrefix(u.Name, "system:serviceaccount:"+ControllerNamespace+":")
}

// ComponentRefused is the log message of a refused component; the test
// suites fail on it.
const ComponentRefused = "a cluster component was refused: its role lacks a permission it uses"
