package apiserver

import (
	"encoding/json"
	"log/slog"
	"testing"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/skiff-sh/skiff/internal/aggregator"
	"github.com/skiff-sh/skiff/internal/registry"
)

// Discovery merges the group-versions other servers serve: groups by
// priority as upstream orders them, versions by version priority, a
// remote route taking over a local group-version, Stale for a server
// that did not answer its last discovery request.
func TestDiscoveryWithAggregatedAPIs(t *testing.T) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(nil, s, nil, registry.AllocatorConfig{ServiceCIDR: "10.43.0.0/16", NodePortMin: 30000, NodePortMax: 32767}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	wardle := func(v string, prio int32, fresh bool) *aggregator.Route {
		gv := schema.GroupVersion{Group: "wardle.example.com", Version: v}
		r := &aggregator.Route{GV: gv, GroupPriority: 2000, VersionPriority: prio, Fresh: fresh,
			Discovery: aggregator.ToAggregated(gv, &metav1.APIResourceList{APIResources: []metav1.APIResource{{Name: "flunders", Kind: "Flunder", Namespaced: true, Verbs: []string{"get"}}}})}
		return r
	}
	metrics := &aggregator.Route{GV: schema.GroupVersion{Group: "metrics.k8s.io", Version: "v1beta1"}, GroupPriority: 100, VersionPriority: 100}
	table := &aggregator.Table{Generation: 1, Routes: map[schema.GroupVersion]*aggregator.Route{
		{Group: "wardle.example.com", Version: "v1alpha1"}: wardle("v1alpha1", 200, true),
		{Group: "wardle.example.com", Version: "v1beta1"}:  wardle("v1beta1", 100, false),
		metrics.GV: metrics,
	}}
	d := buildDiscovery(reg, table)

	var list metav1.APIGroupList
	if err := json.Unmarshal(d.groups, &list); err != nil {
		t.Fatal(err)
	}
	index := map[string]int{}
	for i, g := range list.Groups {
		index[g.Name] = i
	}
	// (APIService is served by the control plane, not this registry.)
	if list.Groups[0].Name != "apps" || index["events.k8s.io"] != 1 || index["authentication.k8s.io"] != 2 {
		t.Errorf("built-in groups first, by upstream's priorities: %v", list.Groups[:3])
	}
	if !(index["wardle.example.com"] < index["metrics.k8s.io"]) {
		t.Errorf("groupPriorityMinimum 2000 before 100: %v", index)
	}
	w := list.Groups[index["wardle.example.com"]]
	if w.PreferredVersion.Version != "v1alpha1" || len(w.Versions) != 2 || w.Versions[0].Version != "v1alpha1" {
		t.Errorf("versions by versionPriority (200 before 100): %+v", w)
	}
	if d.group["wardle.example.com"] == nil {
		t.Error("/apis/wardle.example.com is not served")
	}
	var agg apidiscoveryv2.APIGroupDiscoveryList
	if err := json.Unmarshal(d.aggGroups, &agg); err != nil {
		t.Fatal(err)
	}
	for _, g := range agg.Items {
		if g.Name != "wardle.example.com" {
			continue
		}
		for _, v := range g.Versions {
			want := apidiscoveryv2.DiscoveryFreshnessCurrent
			if v.Version == "v1beta1" {
				want = apidiscoveryv2.DiscoveryFreshnessStale
			}
			if v.Freshness != want || len(v.Resources) != 1 || v.Resources[0].Resource != "flunders" {
				t.Errorf("aggregated %s: %+v", v.Version, v)
			}
		}
	}
	// A remote route takes over a local group-version.
	apps := &aggregator.Route{GV: schema.GroupVersion{Group: "apps", Version: "v1"}, GroupPriority: 17800, VersionPriority: 15}
	d = buildDiscovery(reg, &aggregator.Table{Generation: 2, Routes: map[schema.GroupVersion]*aggregator.Route{apps.GV: apps}})
	if _, local := d.resources[apps.GV]; local {
		t.Error("apps/v1 still answered here though another server serves it")
	}
}
