// Package ingress is skiff's built-in ingress controller: an HTTP and
// HTTPS reverse proxy on the node's ports 80 and 443 that routes by the
// host and path rules of the Ingresses of class skiff to the ready
// endpoints of their Services, with TLS certificates from Secrets. Routes
// are computed as data (BuildTable, Match); the server and the status
// writer are the edges.
package ingress

import (
	"sort"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
)

// ClassName and ControllerName identify skiff's IngressClass.
const (
	ClassName      = "skiff"
	ControllerName = "skiff.sh/ingress"
)

// Backend is a Service port an ingress path leads to.
type Backend struct {
	Namespace, Service string
	Port               networkingv1.ServiceBackendPort
}

type route struct {
	path    string
	exact   bool
	backend Backend
}

// certRef names a TLS Secret.
type certRef struct{ Namespace, Secret string }

// Table is the routing of every Ingress the controller serves.
type Table struct {
	hosts    map[string][]route // exact host → routes, best first
	wildcard map[string][]route // ".example.com" for "*.example.com"
	anyHost  []route
	fallback *Backend
	certs    map[string]certRef // host or ".suffix" → Secret
	// Served are the Ingresses routed, for status.
	Served []*networkingv1.Ingress
}

// BuildTable routes the ingresses for which ours is true. The oldest
// Ingress wins a host and path claimed twice, as upstream controllers do.
func BuildTable(ingresses []*networkingv1.Ingress, ours func(*networkingv1.Ingress) bool) *Table {
	t := &Table{hosts: map[string][]route{}, wildcard: map[string][]route{}, certs: map[string]certRef{}}
	list := append([]*networkingv1.Ingress{}, ingresses...)
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	claimed := map[string]bool{}
	for _, ing := range list {
		if !ours(ing) || ing.DeletionTimestamp != nil {
			continue
		}
		t.Served = append(t.Served, ing)
		if d := ing.Spec.DefaultBackend; d != nil && d.Service != nil && t.fallback == nil {
			t.fallback = &Backend{Namespace: ing.Namespace, Service: d.Service.Name, Port: d.Service.Port}
		}
		for _, tls := range ing.Spec.TLS {
			for _, h := range tls.Hosts {
				key := hostKey(h)
				if _, ok := t.certs[key]; !ok && tls.SecretName != "" {
					t.certs[key] = certRef{Namespace: ing.Namespace, Secret: tls.SecretName}
				}
			}
		}
		for _, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for _, p := range rule.HTTP.Paths {
				if p.Backend.Service == nil {
					continue
				}
				exact := p.PathType != nil && *p.PathType == networkingv1.PathTypeExact
				path := p.Path
				if path == "" {
					path = "/"
				}
				id := strings.ToLower(rule.Host) + "|" + path + "|" + map[bool]string{true: "exact", false: "prefix"}[exact]
				if claimed[id] {
					continue
				}
				claimed[id] = true
				r := route{path: path, exact: exact, backend: Backend{Namespace: ing.Namespace, Service: p.Backend.Service.Name, Port: p.Backend.Service.Port}}
				key := hostKey(rule.Host)
				switch {
				case rule.Host == "":
					t.anyHost = append(t.anyHost, r)
				case strings.HasPrefix(key, "."):
					t.wildcard[key] = append(t.wildcard[key], r)
				default:
					t.hosts[key] = append(t.hosts[key], r)
				}
			}
		}
	}
	order := func(rs []route) {
		// Longest path first; on a tie Exact before Prefix.
		sort.SliceStable(rs, func(i, j int) bool {
			if len(rs[i].path) != len(rs[j].path) {
				return len(rs[i].path) > len(rs[j].path)
			}
			return rs[i].exact && !rs[j].exact
		})
	}
	for _, rs := range t.hosts {
		order(rs)
	}
	for _, rs := range t.wildcard {
		order(rs)
	}
	order(t.anyHost)
	return t
}

// hostKey lower-cases a host; "*.example.com" becomes ".example.com".
func hostKey(h string) string {
	h = strings.ToLower(h)
	if rest, ok := strings.CutPrefix(h, "*"); ok {
		return rest
	}
	return h
}

// Match finds the backend for a request: the host's own rules, else a
// wildcard's (one label deep), else the rules without a host; the longest
// matching path wins; then the default backend.
func (t *Table) Match(host, path string) (Backend, bool) {
	host = strings.ToLower(host)
	if rs, ok := t.hosts[host]; ok {
		if b, ok := matchPath(rs, path); ok {
			return b, true
		}
	} else if i := strings.IndexByte(host, '.'); i > 0 {
		if rs, ok := t.wildcard[host[i:]]; ok {
			if b, ok := matchPath(rs, path); ok {
				return b, true
			}
		}
	}
	if b, ok := matchPath(t.anyHost, path); ok {
		return b, true
	}
	if t.fallback != nil {
		return *t.fallback, true
	}
	return Backend{}, false
}

func matchPath(rs []route, path string) (Backend, bool) {
	for _, r := range rs {
		if r.exact && path == r.path || !r.exact && prefixMatch(r.path, path) {
			return r.backend, true
		}
	}
	return Backend{}, false
}

// prefixMatch compares by path elements: "/foo" matches "/foo", "/foo/"
// and "/foo/bar", not "/foobar".
func prefixMatch(prefix, path string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return true
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// cert is the Secret holding the certificate for an SNI name, if any.
func (t *Table) cert(name string) (certRef, bool) {
	name = strings.ToLower(name)
	if c, ok := t.certs[name]; ok {
		return c, true
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		c, ok := t.certs[name[i:]]
		return c, ok
	}
	return certRef{}, false
}
