package apiserver

import (
	"encoding/json"
	"maps"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"

	"github.com/skiff-sh/skiff/internal/aggregator"
	"github.com/skiff-sh/skiff/internal/registry"
)

// preferredVersion of each group (the newest stable one).
func preferredVersion(group string, versions []string) string {
	for _, v := range versions {
		if v == "v2" {
			return v
		}
	}
	return versions[0]
}

// discoveryDocs holds the precomputed discovery responses.
type discoveryDocs struct {
	// generation is the registry's custom-resource generation the
	// documents were built at.
	generation uint64
	// remote is the aggregator table generation they include.
	remote    uint64
	legacy    []byte // /api
	groups    []byte // /apis
	group     map[string][]byte
	resources map[schema.GroupVersion][]byte
	aggLegacy []byte
	aggGroups []byte
}

// groupVersion is one version of a group in discovery: served here
// (resources) or by another server (route).
type groupVersion struct {
	version  string
	priority int32
	res      []*registry.Resource
	route    *aggregator.Route
}

// buildDiscovery computes the discovery documents of the resources served
// here and of the group-versions other servers serve (remote). Groups go
// by priority, highest first, then by name, as upstream orders them (its
// own groups by the priorities of their APIServices, custom resources'
// groups at 1000, aggregated ones at their groupPriorityMinimum); versions
// by priority, then newest first.
func buildDiscovery(reg *registry.Registry, remote *aggregator.Table) *discoveryDocs {
	versions := map[string][]*groupVersion{}
	priority := map[string]int32{}
	byGV := map[schema.GroupVersion]*groupVersion{}
	for _, r := range reg.Resources() {
		gv := r.GVK().GroupVersion()
		v := byGV[gv]
		if v == nil {
			gp, vp := aggregator.LocalPriority(gv.Group)
			v = &groupVersion{version: gv.Version, priority: vp}
			byGV[gv] = v
			versions[gv.Group] = append(versions[gv.Group], v)
			priority[gv.Group] = max(priority[gv.Group], gp)
		}
		v.res = append(v.res, r)
	}
	hasRemote := map[string]bool{}
	for gv, route := range remote.Routes {
		hasRemote[gv.Group] = true
		if v := byGV[gv]; v != nil {
			// Another server serves it: the aggregator's route wins.
			v.res, v.route, v.priority = nil, route, route.VersionPriority
		} else {
			versions[gv.Group] = append(versions[gv.Group], &groupVersion{version: gv.Version, priority: route.VersionPriority, route: route})
		}
		priority[gv.Group] = max(priority[gv.Group], route.GroupPriority)
	}
	for _, vs := range versions {
		sort.Slice(vs, func(i, j int) bool {
			if vs[i].priority != vs[j].priority {
				return vs[i].priority > vs[j].priority
			}
			// GA before beta before alpha, higher numbers first.
			return version.CompareKubeAwareVersionStrings(vs[i].version, vs[j].version) > 0
		})
	}
	groups := slices.Collect(maps.Keys(versions))
	sort.Slice(groups, func(i, j int) bool {
		if priority[groups[i]] != priority[groups[j]] {
			return priority[groups[i]] > priority[groups[j]]
		}
		return groups[i] < groups[j]
	})
	d := &discoveryDocs{group: map[string][]byte{}, resources: map[schema.GroupVersion][]byte{}}
	d.legacy, _ = json.Marshal(metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: ""}}})
	list := metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	aggLegacy := apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"}}
	aggGroups := aggLegacy
	for _, g := range groups {
		vs := versions[g]
		names := make([]string, len(vs))
		for i, v := range vs {
			names[i] = v.version
		}
		pref := names[0]
		if !hasRemote[g] {
			pref = preferredVersion(g, names)
		}
		ag := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: g}}
		var gvds []metav1.GroupVersionForDiscovery
		for _, v := range vs {
			gv := schema.GroupVersion{Group: g, Version: v.version}
			gvds = append(gvds, metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: v.version})
			if v.route != nil {
				ag.Versions = append(ag.Versions, remoteVersion(v.route))
				continue
			}
			d.resources[gv], _ = json.Marshal(resourceList(gv, v.res))
			ag.Versions = append(ag.Versions, aggregatedVersion(gv, v.res))
		}
		// The preferred version goes first in aggregated discovery.
		sort.SliceStable(ag.Versions, func(i, j int) bool { return ag.Versions[i].Version == pref && ag.Versions[j].Version != pref })
		if g == "" {
			aggLegacy.Items = append(aggLegacy.Items, ag)
			continue
		}
		apiGroup := metav1.APIGroup{Name: g, Versions: gvds, PreferredVersion: metav1.GroupVersionForDiscovery{GroupVersion: schema.GroupVersion{Group: g, Version: pref}.String(), Version: pref}}
		list.Groups = append(list.Groups, apiGroup)
		one := apiGroup
		one.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
		d.group[g], _ = json.Marshal(one)
		aggGroups.Items = append(aggGroups.Items, ag)
	}
	d.groups, _ = json.Marshal(list)
	d.aggLegacy, _ = json.Marshal(aggLegacy)
	d.aggGroups, _ = json.Marshal(aggGroups)
	return d
}

// remoteVersion is the aggregated discovery of a version another server
// serves: what it last said, Stale when the last attempt failed (upstream
// lists the version even then, with no resources if it never answered).
func remoteVersion(r *aggregator.Route) apidiscoveryv2.APIVersionDiscovery {
	v := apidiscoveryv2.APIVersionDiscovery{Version: r.GV.Version}
	if r.Discovery != nil {
		v = *r.Discovery
	}
	v.Freshness = apidiscoveryv2.DiscoveryFreshnessCurrent
	if !r.Fresh {
		v.Freshness = apidiscoveryv2.DiscoveryFreshnessStale
	}
	return v
}

func resourceList(gv schema.GroupVersion, rs []*registry.Resource) metav1.APIResourceList {
	l := metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
	for _, r := range rs {
		l.APIResources = append(l.APIResources, metav1.APIResource{
			Name: r.Resource(), SingularName: r.SingularName, Namespaced: r.Namespaced, Kind: r.Kind,
			Verbs: r.VerbList(), ShortNames: r.ShortNames, Categories: r.Categories, StorageVersionHash: storageHash(r),
		})
		for _, sub := range subresourcesOf(r) {
			l.APIResources = append(l.APIResources, metav1.APIResource{Name: r.Resource() + "/" + sub.name, Namespaced: r.Namespaced, Kind: sub.kind, Group: sub.group, Version: sub.version, Verbs: sub.verbs})
		}
	}
	return l
}

type subresource struct {
	name, kind, group, version string
	verbs                      []string
}

func subresourcesOf(r *registry.Resource) []subresource {
	var out []subresource
	for _, name := range slices.Sorted(maps.Keys(r.Actions)) {
		if name == "" {
			continue // the resource itself (bindings)
		}
		a := r.Actions[name]
		sr := subresource{name: name, kind: a.Kind.Kind, verbs: a.Verbs}
		if a.Kind.GroupVersion() != r.GVR.GroupVersion() {
			sr.group, sr.version = a.Kind.Group, a.Kind.Version
		}
		out = append(out, sr)
	}
	if r.Status {
		out = append(out, subresource{name: "status", kind: r.Kind, verbs: []string{"get", "patch", "update"}})
	}
	for _, name := range slices.Sorted(maps.Keys(r.Parts)) {
		verbs := r.Parts[name].Verbs
		if verbs == nil {
			verbs = []string{"get", "patch", "update"}
		}
		out = append(out, subresource{name: name, kind: r.Kind, verbs: verbs})
	}
	if r.GVR.Group == "" {
		out = append(out, connectSubresources[r.GVR.Resource]...)
	}
	return out
}

// connectSubresources are the streaming and proxy subresources of the core
// group, with upstream's kinds and verbs.
var connectSubresources = map[string][]subresource{
	"pods": {
		{name: "attach", kind: "PodAttachOptions", verbs: []string{"create", "get"}},
		{name: "exec", kind: "PodExecOptions", verbs: []string{"create", "get"}},
		{name: "log", kind: "Pod", verbs: []string{"get"}},
		{name: "portforward", kind: "PodPortForwardOptions", verbs: []string{"create", "get"}},
		{name: "proxy", kind: "PodProxyOptions", verbs: proxyVerbs},
	},
	"services": {{name: "proxy", kind: "ServiceProxyOptions", verbs: proxyVerbs}},
	"nodes":    {{name: "proxy", kind: "NodeProxyOptions", verbs: proxyVerbs}},
}

var proxyVerbs = []string{"create", "delete", "get", "patch", "update"}

func storageHash(r *registry.Resource) string {
	h := uint32(2166136261)
	for _, c := range []byte(r.GVK().String()) {
		h = (h ^ uint32(c)) * 16777619
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var b strings.Builder
	for i := 0; i < 11; i++ {
		b.WriteByte(alphabet[h%64])
		h = h*31 + 7
	}
	return b.String()
}

func aggregatedVersion(gv schema.GroupVersion, rs []*registry.Resource) apidiscoveryv2.APIVersionDiscovery {
	v := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
	for _, r := range rs {
		scope := apidiscoveryv2.ScopeCluster
		if r.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		ar := apidiscoveryv2.APIResourceDiscovery{
			Resource: r.Resource(), ResponseKind: &metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: r.Kind},
			Scope: scope, SingularResource: r.SingularName, Verbs: r.VerbList(), ShortNames: r.ShortNames, Categories: r.Categories,
		}
		for _, sub := range subresourcesOf(r) {
			k := metav1.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: sub.kind}
			if sub.group != "" || sub.version != "" {
				k = metav1.GroupVersionKind{Group: sub.group, Version: sub.version, Kind: sub.kind}
			}
			ar.Subresources = append(ar.Subresources, apidiscoveryv2.APISubresourceDiscovery{Subresource: sub.name, ResponseKind: &k, Verbs: sub.verbs})
		}
		v.Resources = append(v.Resources, ar)
	}
	return v
}

// wantsAggregated reports whether the Accept header asks for aggregated
// discovery first (as kubectl does).
func wantsAggregated(accept string) (string, bool) {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if mt == mediaJSON && params["g"] == "apidiscovery.k8s.io" && params["v"] == "v2" && params["as"] == "APIGroupDiscoveryList" {
			return "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", true
		}
		if mt == mediaJSON || mt == "*/*" {
			return "", false
		}
	}
	return "", false
}

// docs are the discovery documents, built anew after custom resources
// change.
func (s *Server) docs() *discoveryDocs {
	gen, remote := s.reg.CustomGeneration(), s.routes.Load()
	if d := s.discovery.Load(); d != nil && d.generation == gen && d.remote == remote.Generation {
		return d
	}
	s.discoveryMu.Lock()
	defer s.discoveryMu.Unlock()
	if d := s.discovery.Load(); d != nil && d.generation == gen && d.remote == remote.Generation {
		return d
	}
	d := buildDiscovery(s.reg, remote)
	d.generation, d.remote = gen, remote.Generation
	s.discovery.Store(d)
	return d
}

func (s *Server) serveDiscoveryRoot(w http.ResponseWriter, r *http.Request) error {
	legacy := strings.HasPrefix(r.URL.Path, "/api") && !strings.HasPrefix(r.URL.Path, "/apis")
	docs := s.docs()
	if ct, ok := wantsAggregated(r.Header.Get("Accept")); ok {
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Vary", "Accept")
		if legacy {
			w.Write(docs.aggLegacy)
		} else {
			w.Write(docs.aggGroups)
		}
		return nil
	}
	w.Header().Set("Content-Type", mediaJSON)
	w.Header().Set("Vary", "Accept")
	if legacy {
		w.Write(docs.legacy)
	} else {
		w.Write(docs.groups)
	}
	return nil
}

func (s *Server) serveGroupDiscovery(w http.ResponseWriter, r *http.Request, ri RequestInfo) error {
	if r.Method != http.MethodGet {
		return apierrors.NewMethodNotSupported(schema.GroupResource{}, r.Method)
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	docs := s.docs()
	var body []byte
	switch {
	case parts[0] == "apis" && len(parts) == 2:
		body = docs.group[parts[1]]
	case ri.Version != "":
		body = docs.resources[schema.GroupVersion{Group: ri.Group, Version: ri.Version}]
	}
	if body == nil {
		return apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path)
	}
	w.Header().Set("Content-Type", mediaJSON)
	w.Write(body)
	return nil
}
