package controlplane

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-sh/skiff/internal/aggregator"
	"github.com/skiff-sh/skiff/internal/pki"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// frontProxy is the API server's identity toward aggregated API servers:
// a client certificate (CN front-proxy-client) from a CA of its own, so
// that no certificate of the cluster CA can pose as the proxy and assert
// any user in the X-Remote-* headers.
type frontProxy struct {
	caPEM []byte
	cert  tls.Certificate
}

// frontProxyName is the proxy certificate's common name, the one allowed
// name aggregated servers accept (upstream's requestheader-allowed-names).
const frontProxyName = "front-proxy-client"

func loadFrontProxy(dataDir string) (*frontProxy, error) {
	dir := filepath.Join(dataDir, "pki")
	if err := os.MkdirAll(filepath.Join(dir, "request-header"), 0o700); err != nil {
		return nil, err
	}
	ca, err := pki.LoadOrCreateCA(filepath.Join(dir, "request-header"), "skiff-request-header-ca")
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := ca.EnsureLeaf(filepath.Join(dir, "front-proxy-client"), pki.LeafSpec{CommonName: frontProxyName, Client: true})
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &frontProxy{caPEM: ca.CertPEM, cert: pair}, nil
}

// extensionAuthentication is kube-system/extension-apiserver-authentication,
// which aggregated API servers (built on upstream's library) read to learn
// which client certificates and front-proxy headers to trust.
func extensionAuthentication(clientCA, requestHeaderCA []byte) *corev1.ConfigMap {
	list := func(v ...string) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "extension-apiserver-authentication", Namespace: "kube-system"},
		Data: map[string]string{
			"client-ca-file":                     string(clientCA),
			"requestheader-client-ca-file":       string(requestHeaderCA),
			"requestheader-allowed-names":        list(frontProxyName),
			"requestheader-username-headers":     list("X-Remote-User"),
			"requestheader-uid-headers":          list("X-Remote-Uid"),
			"requestheader-group-headers":        list("X-Remote-Group"),
			"requestheader-extra-headers-prefix": list("X-Remote-Extra-"),
		},
	}
}

// writeExtensionAuthentication keeps the ConfigMap as this server's
// certificates say (written at every start: a CA may have been renewed).
func writeExtensionAuthentication(ctx context.Context, reg *registry.Registry, want *corev1.ConfigMap) error {
	res := reg.Lookup(corev1.SchemeGroupVersion.WithResource("configmaps"))
	_, _, err := reg.Update(ctx, res, want.Namespace, want.Name, func(cur runtime.Object) (runtime.Object, error) {
		next := want.DeepCopy()
		if cur != nil {
			next.ResourceVersion = cur.(*corev1.ConfigMap).ResourceVersion
		}
		return next, nil
	}, registry.WriteOptions{FieldManager: "kube-apiserver"}, true)
	return err
}

// validateAPIService is the APIService rules beyond its schema.
func validateAPIService(obj runtime.Object) field.ErrorList {
	a, err := aggregator.FromObject(obj)
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("spec"), nil, err.Error())}
	}
	return aggregator.Validate(a)
}

// Availability checks: a passing APIService is checked again after
// availableRecheck, a failing one after failingRecheck, and any after its
// Service or endpoints change.
const (
	availableRecheck = 30 * time.Second
	failingRecheck   = 2 * time.Second
	aggregationTick  = 500 * time.Millisecond
)

// remoteState is what the loop remembers of one remote APIService.
type remoteState struct {
	spec     string // the spec the route was built from
	observed string // resource versions of its Service and slices
	next     time.Time
	route    *aggregator.Route
}

// keepAggregatedAPIs runs upstream's aggregator controllers for this
// server until ctx ends: every APIService that names a Service gets a
// route (its TLS transport), an Available condition from upstream's
// checks (Service, port, ready endpoints, a discovery request to the
// server), and its discovery in this server's; the routes are published
// to the API server's handlers as one table.
func (s *server) keepAggregatedAPIs(ctx context.Context, fp *frontProxy) {
	res := s.reg.Lookup(apiServicesGVR)
	svcRes := s.reg.Lookup(corev1.SchemeGroupVersion.WithResource("services"))
	sliceRes := s.reg.Lookup(discoveryv1.SchemeGroupVersion.WithResource("endpointslices"))
	states := map[string]*remoteState{}
	var gen uint64
	t := time.NewTicker(aggregationTick)
	defer t.Stop()
	for {
		if changed := s.syncAggregatedAPIs(ctx, res, svcRes, sliceRes, fp, states); changed {
			gen++
			tbl := &aggregator.Table{Generation: gen, Routes: map[schema.GroupVersion]*aggregator.Route{}}
			for _, st := range states {
				tbl.Routes[st.route.GV] = st.route
			}
			s.routes.Store(tbl)
		}
		select {
		case <-ctx.Done():
			for _, st := range states {
				st.route.Close()
			}
			return
		case <-t.C:
		}
	}
}

// syncAggregatedAPIs is one pass; it reports whether the table changed.
func (s *server) syncAggregatedAPIs(ctx context.Context, res, svcRes, sliceRes *registry.Resource, fp *frontProxy, states map[string]*remoteState) bool {
	if !s.reg.Cache(res).Ready() {
		return false
	}
	objs, _ := s.reg.Cache(res).Snapshot(storage.Filter{})
	now := time.Now()
	changed := false
	seen := map[string]bool{}
	type due struct {
		a   *aggregator.APIService
		st  *remoteState
		obs aggregator.Observed
	}
	var todo []due
	for _, o := range objs {
		a, err := aggregator.FromObject(o.Obj)
		if err != nil || !a.Remote() {
			continue
		}
		seen[a.Name] = true
		spec, _ := json.Marshal(a.Spec)
		st := states[a.Name]
		if st == nil || st.spec != string(spec) {
			route, err := aggregator.NewRoute(a, &fp.cert, serviceEndpoint(s.reg))
			if err != nil {
				s.log.Warn("aggregated API", "apiservice", a.Name, "err", err)
				continue
			}
			if st != nil {
				st.route.Close()
			}
			st = &remoteState{spec: string(spec), route: route}
			states[a.Name] = st
			changed = true
		}
		obs, fingerprint := observeService(s.reg, svcRes, sliceRes, a.Spec.Service)
		// A request that could not reach the server brings the check
		// forward (upstream waits for its 30 s resync).
		if fingerprint != st.observed || !now.Before(st.next) || a.IsAvailable() != st.route.Available || st.route.Failed() {
			st.observed = fingerprint
			todo = append(todo, due{a: a, st: st, obs: obs})
		}
	}
	for name, st := range states {
		if !seen[name] {
			st.route.Close()
			delete(states, name)
			changed = true
		}
	}
	// Probes run side by side: each may wait up to its timeout.
	var wg sync.WaitGroup
	discs := make([]*apidiscoveryv2.APIVersionDiscovery, len(todo))
	for i := range todo {
		if !aggregator.NeedsProbe(todo[i].a, todo[i].obs) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			discs[i], todo[i].obs.ProbeErr = todo[i].st.route.Probe(ctx)
		}()
	}
	wg.Wait()
	for i, d := range todo {
		cond := aggregator.Decide(d.a, d.obs)
		available := cond.Status == string(metav1.ConditionTrue)
		if err := s.setAPIServiceCondition(ctx, res, d.a.Name, cond); err != nil && ctx.Err() == nil {
			s.log.Warn("APIService status", "apiservice", d.a.Name, "err", err)
		}
		disc, fresh := d.st.route.Discovery, discs[i] != nil
		if fresh {
			disc = discs[i]
		}
		d.st.route = d.st.route.With(available, disc, fresh)
		if fresh {
			// Its OpenAPI, for `kubectl explain` and client-side
			// validation (kept as it was when it cannot be read).
			if doc, err := d.st.route.FetchOpenAPIV3(ctx); err == nil {
				d.st.route = d.st.route.WithOpenAPI(doc)
			} else {
				s.log.Debug("aggregated OpenAPI", "apiservice", d.a.Name, "err", err)
			}
		}
		d.st.next = time.Now().Add(failingRecheck)
		if available {
			d.st.next = time.Now().Add(availableRecheck)
		}
		changed = true
	}
	return changed
}

// observeService reads an APIService's Service and its EndpointSlices
// from the caches, with a fingerprint of their resource versions.
func observeService(reg *registry.Registry, svcRes, sliceRes *registry.Resource, ref *aggregator.ServiceReference) (aggregator.Observed, string) {
	var obs aggregator.Observed
	fingerprint := ""
	if o := reg.Cache(svcRes).Get(svcRes.Key(ref.Namespace, ref.Name)); o != nil {
		obs.Service = o.Obj.(*corev1.Service)
		fingerprint = obs.Service.ResourceVersion
	}
	slices, _ := reg.Cache(sliceRes).Snapshot(storage.Filter{KeyPrefix: ref.Namespace + "/",
		Labels: labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: ref.Name})})
	for _, so := range slices {
		sl := so.Obj.(*discoveryv1.EndpointSlice)
		obs.Slices = append(obs.Slices, sl)
		fingerprint += "," + sl.ResourceVersion
	}
	return obs, fingerprint
}

// setAPIServiceCondition writes one condition into an APIService's status,
// keeping its other conditions; an unchanged condition writes nothing.
func (s *server) setAPIServiceCondition(ctx context.Context, res *registry.Resource, name string, c aggregator.Condition) error {
	if o := s.reg.Cache(res).Get(res.Key("", name)); o != nil {
		if a, err := aggregator.FromObject(o.Obj); err == nil {
			if _, changed := aggregator.SetCondition(a.Status.Conditions, c, metav1.Now()); !changed {
				return nil
			}
		}
	}
	_, _, err := s.reg.Update(ctx, res, "", name, func(cur runtime.Object) (runtime.Object, error) {
		if cur == nil {
			return nil, apierrors.NewNotFound(res.GroupResource(), name)
		}
		u := cur.(*unstructured.Unstructured).DeepCopy()
		a, err := aggregator.FromObject(u)
		if err != nil {
			return nil, err
		}
		conds, changed := aggregator.SetCondition(a.Status.Conditions, c, metav1.Now())
		if !changed {
			return cur, nil
		}
		raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&aggregator.Status{Conditions: conds})
		if err != nil {
			return nil, err
		}
		if err := unstructured.SetNestedField(u.Object, raw["conditions"], "status", "conditions"); err != nil {
			return nil, err
		}
		return u, nil
	}, registry.WriteOptions{Subresource: "status", FieldManager: "kube-apiserver"}, false)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
