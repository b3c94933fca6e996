package apiserver

import (
	"net/http"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/fields"

	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/authz"
)

// attributes are what a request asks, for the authorizers: the parsed
// resource request, or the verb and path of a non-resource one.
func attributes(ri RequestInfo, u auth.User, r *http.Request) authz.Attributes {
	if !ri.IsResource {
		return authz.Attributes{User: u, Verb: nonResourceVerb(r.Method), Path: r.URL.Path}
	}
	a := authz.Attributes{User: u, Verb: ri.Verb, IsResource: true, APIGroup: ri.Group, APIVersion: ri.Version,
		Resource: ri.Resource, Namespace: ri.Namespace, Name: ri.Name}
	// A proxy subresource's path after it is not part of what is asked.
	a.Subresource, _, _ = strings.Cut(ri.Subresource, "/")
	if a.Name == "" && (a.Verb == "list" || a.Verb == "watch") {
		// A list or watch of one object by metadata.name is a request
		// for that object, which a rule's resourceNames may allow.
		if sel, err := fields.ParseSelector(r.URL.Query().Get("fieldSelector")); err == nil {
			if name, ok := sel.RequiresExactMatch("metadata.name"); ok {
				a.Name = name
			}
		}
	}
	return a
}

func nonResourceVerb(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	}
	return strings.ToLower(method)
}

// streams are the subresources whose WebSocket upgrade (a GET) opens a
// process or a port: upstream asks for create on them as for a POST.
var streams = []string{"exec", "attach", "portforward"}

func (s *Server) withAuthorization(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := auth.UserFrom(r.Context())
		a := attributes(requestInfoFrom(r.Context()), u, r)
		asks := []authz.Attributes{a}
		if a.IsResource && a.Resource == "pods" && a.Verb == "get" && slices.Contains(streams, a.Subresource) {
			create := a
			create.Verb = "create"
			asks = []authz.Attributes{create}
		}
		for _, ask := range asks {
			d, reason := s.authz.Authorize(ask)
			if reason != "" {
				annotate(r.Context(), "authorization.k8s.io/reason", reason)
			}
			if d != authz.Allow {
				annotate(r.Context(), "authorization.k8s.io/decision", "forbid")
				if authz.Component(u) {
					s.log.Warn(authz.ComponentRefused,
						"user", u.Name, "verb", ask.Verb, "group", ask.APIGroup, "resource", ask.Resource,
						"subresource", ask.Subresource, "namespace", ask.Namespace, "name", ask.Name, "path", ask.Path)
				}
				s.writeError(w, r, authz.Forbidden(ask, reason))
				return
			}
		}
		annotate(r.Context(), "authorization.k8s.io/decision", "allow")
		next.ServeHTTP(w, r)
	})
}

// Impersonation headers, as upstream's.
const (
	headerImpersonateUser  = "Impersonate-User"
	headerImpersonateGroup = "Impersonate-Group"
	headerImpersonateUID   = "Impersonate-Uid"
	headerImpersonateExtra = "Impersonate-Extra-"
)

// withImpersonation acts as another user when the request asks to and its
// real user may impersonate each part asked (users, groups, uids,
// serviceaccounts, userextras/<key>), as upstream's filter.
func (s *Server) withImpersonation(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.Header.Get(headerImpersonateUser)
		groups := r.Header.Values(headerImpersonateGroup)
		uid := r.Header.Get(headerImpersonateUID)
		var extraKeys []string
		for k := range r.Header {
			if strings.HasPrefix(k, headerImpersonateExtra) {
				extraKeys = append(extraKeys, strings.ToLower(strings.TrimPrefix(k, headerImpersonateExtra)))
			}
		}
		if name == "" && len(groups) == 0 && uid == "" && len(extraKeys) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if name == "" {
			s.writeError(w, r, badRequest("requested %v without impersonating a user", r.Header))
			return
		}
		real, _ := auth.UserFrom(r.Context())
		var asks []authz.Attributes
		target := auth.User{Name: name, UID: uid}
		if ns, sa, ok := serviceAccountOf(name); ok {
			asks = append(asks, authz.Attributes{User: real, Verb: "impersonate", IsResource: true, Resource: "serviceaccounts", Namespace: ns, Name: sa})
			if len(groups) == 0 {
				target.Groups = []string{authz.ServiceAccountsGroup, authz.ServiceAccountsGroup + ":" + ns}
			}
		} else {
			asks = append(asks, authz.Attributes{User: real, Verb: "impersonate", IsResource: true, Resource: "users", Name: name})
		}
		for _, g := range groups {
			asks = append(asks, authz.Attributes{User: real, Verb: "impersonate", IsResource: true, Resource: "groups", Name: g})
		}
		if uid != "" {
			asks = append(asks, authz.Attributes{User: real, Verb: "impersonate", IsResource: true, APIGroup: "authentication.k8s.io", Resource: "uids", Name: uid})
		}
		for _, k := range extraKeys {
			for _, v := range r.Header.Values(headerImpersonateExtra + k) {
				asks = append(asks, authz.Attributes{User: real, Verb: "impersonate", IsResource: true, APIGroup: "authentication.k8s.io", Resource: "userextras", Subresource: k, Name: v})
			}
		}
		for _, a := range asks {
			if d, reason := s.authz.Authorize(a); d != authz.Allow {
				s.writeError(w, r, authz.Forbidden(a, reason))
				return
			}
		}
		if len(groups) > 0 {
			target.Groups = append(target.Groups, groups...)
		}
		if name != authz.Anonymous && !slices.Contains(target.Groups, authz.Authenticated) {
			target.Groups = append(target.Groups, authz.Authenticated)
		}
		if rec := auditRecordFrom(r.Context()); rec != nil {
			iu := userInfo(target)
			rec.impersonated = &iu
		}
		r = r.Clone(auth.WithUser(r.Context(), target))
		for k := range r.Header {
			if strings.HasPrefix(k, "Impersonate-") {
				r.Header.Del(k)
			}
		}
		next.ServeHTTP(w, r)
	})
}

func serviceAccountOf(user string) (namespace, name string, ok bool) {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	return namespace, name, ok && namespace != "" && name != ""
}
