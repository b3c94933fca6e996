// Command extension extends the API the way installed software does, run
// as pods by the e2e test:
//
//   - "serve" is one HTTPS server (certificate from /certs) that is an
//     aggregated API server for wardle.example.com/v1alpha1 flunders (in
//     memory; only the API server's front-proxy certificate, from the CA
//     kube-system/extension-apiserver-authentication names, may assert a
//     user), a mutating admission webhook (/mutate labels Widgets) and the
//     Widgets' conversion webhook (/convert: v1 spec.size "3" <-> v2
//     spec.replicas 3);
//   - "operator" reconciles every Widget into a ConfigMap it owns and marks
//     the Widget's status ready, with client-go's dynamic informers.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

var widgets = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}

func main() {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		log.Fatal(err)
	}
	switch os.Args[1] {
	case "serve":
		serve(cfg)
	case "operator":
		operate(cfg)
	default:
		log.Fatalf("unknown command %q", os.Args[1])
	}
}

func serve(cfg *rest.Config) {
	cs := kubernetes.NewForConfigOrDie(cfg)
	var cm *corev1.ConfigMap
	for {
		var err error
		if cm, err = cs.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "extension-apiserver-authentication", metav1.GetOptions{}); err == nil {
			break
		}
		log.Printf("read extension-apiserver-authentication: %v", err)
		time.Sleep(time.Second)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(cm.Data["requestheader-client-ca-file"]))
	var allowed []string
	_ = json.Unmarshal([]byte(cm.Data["requestheader-allowed-names"]), &allowed)
	ws := &wardle{items: map[string]map[string]any{}, allowed: allowed}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/mutate", mutate)
	mux.HandleFunc("/convert", convert)
	mux.Handle("/apis/", ws)
	srv := &http.Server{Addr: ":8443", Handler: mux, TLSConfig: &tls.Config{ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}}
	log.Printf("serving on :8443, front proxy names %v", allowed)
	log.Fatal(srv.ListenAndServeTLS("/certs/tls.crt", "/certs/tls.key"))
}

// wardle is the aggregated API.
type wardle struct {
	mu      sync.Mutex
	items   map[string]map[string]any
	allowed []string
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (ws *wardle) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Only the front proxy may say who the user is.
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || !slices.Contains(ws.allowed, r.TLS.VerifiedChains[0][0].Subject.CommonName) {
		writeJSON(w, http.StatusUnauthorized, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure, Code: 401, Reason: metav1.StatusReasonUnauthorized, Message: "Unauthorized"})
		return
	}
	const prefix = "/apis/wardle.example.com/v1alpha1"
	if r.URL.Path == prefix {
		writeJSON(w, http.StatusOK, metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "wardle.example.com/v1alpha1",
			APIResources: []metav1.APIResource{{Name: "flunders", SingularName: "flunder", Namespaced: true, Kind: "Flunder", Verbs: []string{"create", "get", "list"}}}})
		return
	}
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, prefix), "/"), "/")
	if !strings.HasPrefix(r.URL.Path, prefix+"/") || len(parts) < 3 || parts[0] != "namespaces" || parts[2] != "flunders" {
		http.NotFound(w, r)
		return
	}
	ns := parts[1]
	ws.mu.Lock()
	defer ws.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && len(parts) == 3:
		u := unstructured.Unstructured{Object: map[string]any{}}
		if err := json.NewDecoder(r.Body).Decode(&u.Object); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		u.SetNamespace(ns)
		u.SetResourceVersion("1")
		u.SetAnnotations(map[string]string{"wardle.example.com/created-by": r.Header.Get("X-Remote-User")})
		ws.items[ns+"/"+u.GetName()] = u.Object
		writeJSON(w, http.StatusCreated, u.Object)
	case r.Method == http.MethodGet && len(parts) == 4:
		obj, ok := ws.items[ns+"/"+parts[3]]
		if !ok {
			writeJSON(w, http.StatusNotFound, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure, Code: 404, Reason: metav1.StatusReasonNotFound,
				Message: fmt.Sprintf("flunders.wardle.example.com %q not found", parts[3])})
			return
		}
		writeJSON(w, http.StatusOK, obj)
	case r.Method == http.MethodGet:
		items := []any{}
		for k, obj := range ws.items {
			if strings.HasPrefix(k, ns+"/") {
				items = append(items, obj)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"apiVersion": "wardle.example.com/v1alpha1", "kind": "FlunderList", "metadata": map[string]any{"resourceVersion": "1"}, "items": items})
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// mutate labels the Widgets it is asked about.
func mutate(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	u := unstructured.Unstructured{}
	_ = json.Unmarshal(review.Request.Object.Raw, &u.Object)
	patch := `[{"op":"add","path":"/metadata/labels","value":{"mutated-by":"extension"}}]`
	if u.GetLabels() != nil {
		patch = `[{"op":"add","path":"/metadata/labels/mutated-by","value":"extension"}]`
	}
	pt := admissionv1.PatchTypeJSONPatch
	review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true, Patch: []byte(patch), PatchType: &pt}
	review.Request = nil
	writeJSON(w, http.StatusOK, review)
}

// convert turns Widgets between v1 (spec.size, a string) and v2
// (spec.replicas, an integer).
func convert(w http.ResponseWriter, r *http.Request) {
	var review apiextensionsv1.ConversionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	resp := &apiextensionsv1.ConversionResponse{UID: review.Request.UID, Result: metav1.Status{Status: metav1.StatusSuccess}}
	for _, raw := range review.Request.Objects {
		obj := map[string]any{}
		_ = json.Unmarshal(raw.Raw, &obj)
		spec, _ := obj["spec"].(map[string]any)
		switch review.Request.DesiredAPIVersion {
		case "example.com/v2":
			if s, ok := spec["size"].(string); ok {
				n, _ := strconv.Atoi(s)
				delete(spec, "size")
				spec["replicas"] = n
			}
		case "example.com/v1":
			if n, ok := spec["replicas"].(float64); ok {
				delete(spec, "replicas")
				spec["size"] = strconv.Itoa(int(n))
			}
		}
		obj["apiVersion"] = review.Request.DesiredAPIVersion
		b, _ := json.Marshal(obj)
		resp.ConvertedObjects = append(resp.ConvertedObjects, runtime.RawExtension{Raw: b})
	}
	review.Response, review.Request = resp, nil
	writeJSON(w, http.StatusOK, review)
}

// operate reconciles Widgets (read at v1) into ConfigMaps, level-triggered:
// every add, update and resync looks at the whole Widget again.
func operate(cfg *rest.Config) {
	dyn := dynamic.NewForConfigOrDie(cfg)
	cs := kubernetes.NewForConfigOrDie(cfg)
	factory := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 10*time.Second)
	informer := factory.ForResource(widgets).Informer()
	queue := make(chan string, 1024)
	enqueue := func(obj any) {
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			queue <- key
		}
	}
	_, _ = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) }})
	ctx := context.Background()
	factory.Start(ctx.Done())
	cache.WaitForCacheSync(ctx.Done(), informer.HasSynced)
	log.Print("operator: caches synced")
	for key := range queue {
		obj, exists, err := informer.GetStore().GetByKey(key)
		if err != nil || !exists {
			continue
		}
		if err := reconcile(ctx, cs, dyn, obj.(*unstructured.Unstructured)); err != nil {
			log.Printf("reconcile %s: %v", key, err)
			go func() { time.Sleep(time.Second); queue <- key }()
		}
	}
}

func reconcile(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, wd *unstructured.Unstructured) error {
	size, _, _ := unstructured.NestedString(wd.Object, "spec", "size")
	name := "widget-" + wd.GetName()
	owner := metav1.OwnerReference{APIVersion: "example.com/v1", Kind: "Widget", Name: wd.GetName(), UID: wd.GetUID(), Controller: &[]bool{true}[0]}
	cms := cs.CoreV1().ConfigMaps(wd.GetNamespace())
	cm, err := cms.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{owner}}, Data: map[string]string{"size": size}}, metav1.CreateOptions{})
	case err == nil && cm.Data["size"] != size:
		cm.Data = map[string]string{"size": size}
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	}
	if err != nil {
		return err
	}
	if got, _, _ := unstructured.NestedString(wd.Object, "status", "observedSize"); got == size {
		return nil
	}
	next := wd.DeepCopy()
	_ = unstructured.SetNestedField(next.Object, size, "status", "observedSize")
	_ = unstructured.SetNestedField(next.Object, true, "status", "ready")
	_, err = dyn.Resource(widgets).Namespace(wd.GetNamespace()).UpdateStatus(ctx, next, metav1.UpdateOptions{})
	return err
}
