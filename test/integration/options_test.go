package integration

import (
	"bufio"
	"encoding/json"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestWatchListAndResourceVersionMatch checks sendInitialEvents (the
// streaming list) and resourceVersionMatch on lists.
func TestWatchListAndResourceVersionMatch(t *testing.T) {
	s := startServer(t)
	c := s.raw()
	const cms = "/api/v1/namespaces/default/configmaps"
	for _, n := range []string{"a", "b", "c"} {
		if r := c.do("POST", cms, "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"`+n+`"}}`)); r.code != 201 {
			t.Fatalf("create: %d %s", r.code, r.body)
		}
	}
	req, _ := http.NewRequest("GET", c.base+cms+"?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&resourceVersion=&timeoutSeconds=5", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var names []string
	var bookmark metav1.ObjectMeta
	for sc.Scan() {
		var ev struct {
			Type   string
			Object corev1.ConfigMap
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == "BOOKMARK" {
			bookmark = ev.Object.ObjectMeta
			break
		}
		if ev.Type != "ADDED" {
			t.Fatalf("initial event %s: %s (HTTP %d)", ev.Type, sc.Bytes(), resp.StatusCode)
		}
		names = append(names, ev.Object.Name)
	}
	if len(names) != 3 || names[0] != "a" || names[2] != "c" {
		t.Errorf("initial events: %v", names)
	}
	if bookmark.Annotations[metav1.InitialEventsAnnotationKey] != "true" || bookmark.ResourceVersion == "" {
		t.Errorf("initial-events-end bookmark: %+v", bookmark)
	}
	// A metadata-only watch list gets every event, the bookmark included,
	// as PartialObjectMetadata.
	req, _ = http.NewRequest("GET", c.base+cms+"?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=5", nil)
	req.Header.Set("Accept", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
	mresp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer mresp.Body.Close()
	msc := bufio.NewScanner(mresp.Body)
	for msc.Scan() {
		var ev struct {
			Type   string
			Object metav1.PartialObjectMetadata
		}
		if err := json.Unmarshal(msc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Object.Kind != "PartialObjectMetadata" {
			t.Errorf("metadata watch %s event of kind %q", ev.Type, ev.Object.Kind)
		}
		if ev.Type == "BOOKMARK" {
			break
		}
	}
	// Without the required companions sendInitialEvents is refused.
	if r := c.do("GET", cms+"?watch=true&sendInitialEvents=true", "", nil); r.code != 422 {
		t.Errorf("sendInitialEvents without bookmarks: %d %s", r.code, r.body)
	}

	// Exact reads at an old revision see the old state; NotOlderThan a
	// future revision is refused after a bounded wait.
	first := c.do("GET", cms, "", nil)
	var l corev1.ConfigMapList
	json.Unmarshal(first.body, &l)
	c.do("DELETE", cms+"/a", "", nil)
	r := c.do("GET", cms+"?resourceVersion="+l.ResourceVersion+"&resourceVersionMatch=Exact", "", nil)
	var old corev1.ConfigMapList
	json.Unmarshal(r.body, &old)
	if r.code != 200 || len(old.Items) != 3 || old.ResourceVersion != l.ResourceVersion {
		t.Errorf("Exact list at %s: %d items at %s (%d)", l.ResourceVersion, len(old.Items), old.ResourceVersion, r.code)
	}
	r = c.do("GET", cms+"?resourceVersion=0", "", nil)
	var any0 corev1.ConfigMapList
	json.Unmarshal(r.body, &any0)
	if r.code != 200 || len(any0.Items) < 2 {
		t.Errorf("resourceVersion=0 list: %d %d", r.code, len(any0.Items))
	}
	if r := c.do("GET", cms+"?resourceVersion=999999999&resourceVersionMatch=NotOlderThan", "", nil); r.code < 400 || r.code == 500 {
		t.Errorf("list not older than a future revision: %d", r.code)
	}
}

// TestDeleteOptionsBodies checks that DeleteOptions bodies are accepted in
// every apiVersion clients send them in: the resource's own group version
// and meta.k8s.io/v1 (what recent kubectl sends).
func TestDeleteOptionsBodies(t *testing.T) {
	s := startServer(t)
	c := s.raw()
	const cms = "/api/v1/namespaces/default/configmaps"
	bodies := map[string]string{
		"core":    `{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"}`,
		"meta":    `{"kind":"DeleteOptions","apiVersion":"meta.k8s.io/v1","propagationPolicy":"Foreground"}`,
		"untyped": `{"gracePeriodSeconds":0}`,
	}
	for name, body := range bodies {
		if r := c.do("POST", cms, "application/json", []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"`+name+`"}}`)); r.code != 201 {
			t.Fatalf("create %s: %d %s", name, r.code, r.body)
		}
		if r := c.do("DELETE", cms+"/"+name, "application/json", []byte(body)); r.code != 200 && r.code != 202 {
			t.Errorf("delete with %s body: %d %s", name, r.code, r.body)
		}
	}
	// Foreground deletion keeps the object with the foregroundDeletion
	// finalizer until the garbage collector lets it go.
	r := c.do("GET", cms+"/meta", "", nil)
	var fg corev1.ConfigMap
	json.Unmarshal(r.body, &fg)
	if r.code != 200 || fg.DeletionTimestamp == nil || len(fg.Finalizers) != 1 || fg.Finalizers[0] != metav1.FinalizerDeleteDependents {
		t.Errorf("foreground-deleted object: %d %+v", r.code, fg.ObjectMeta)
	}
	if r := c.do("GET", cms+"/core", "", nil); r.code != 404 {
		t.Errorf("background-deleted object still there: %d", r.code)
	}
	if r := c.do("DELETE", cms+"/untyped", "application/json", []byte(`{"kind":"DeleteOptions","apiVersion":"meta.k8s.io/v1","propagationPolicy":"Sideways"}`)); r.code != 400 {
		t.Errorf("bad propagationPolicy: %d %s", r.code, r.body)
	}
}
