package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"slices"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// CRDConfig sets the size of the custom-resource benchmark.
type CRDConfig struct {
	Kubeconfig string
	Objects    int // custom objects to create per worker count
	Workers    []int
	CRDs       int // definitions installed for the discovery and memory figures
	Readies    int // definitions timed from create to first object served
	Requests   int // discovery and OpenAPI requests timed
	// Webhook adds the webhook figure: creates with a validating webhook
	// served by the benchmark on loopback against creates without.
	Webhook bool
	// Settle is how long the server is left idle before each RSS reading:
	// the target is idle memory, and a server gives back the heap a burst
	// left free only once it has been quiet (see procmem.ReturnWhenIdle).
	Settle time.Duration
}

// CRDResult holds the figures of one run.
type CRDResult struct {
	// Ready is the median time from creating a definition to creating
	// its first object.
	Ready                time.Duration
	Creates              []CreateResult
	Discovery, OpenAPIV3 Latency
	RSSBefore, RSSAfter  float64
	WebhookP50, PlainP50 time.Duration
	WebhookP99, PlainP99 time.Duration
	InstalledDefinitions int
	SchemaFields         int
}

// Latency is a request's median and 99th percentile.
type Latency struct{ P50, P99 time.Duration }

// benchFields is the size of the benchmark kind's schema.
const benchFields = 50

// benchCRD is a namespaced kind with a spec of benchFields typed fields.
func benchCRD(group, plural, kind string) *apiextensionsv1.CustomResourceDefinition {
	props := map[string]apiextensionsv1.JSONSchemaProps{}
	for i := range benchFields {
		switch i % 3 {
		case 0:
			props[fmt.Sprintf("s%02d", i)] = apiextensionsv1.JSONSchemaProps{Type: "string", MaxLength: ptr.To[int64](64)}
		case 1:
			props[fmt.Sprintf("i%02d", i)] = apiextensionsv1.JSONSchemaProps{Type: "integer", Minimum: ptr.To(0.0), Maximum: ptr.To(1e6)}
		default:
			props[fmt.Sprintf("b%02d", i)] = apiextensionsv1.JSONSchemaProps{Type: "boolean"}
		}
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group, Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: plural, Kind: kind},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
					"spec": {Type: "object", Properties: props}, "status": {Type: "object", XPreserveUnknownFields: ptr.To(true)}}}}}},
		},
	}
}

func benchObject(gvk schema.GroupVersionKind, name string) *unstructured.Unstructured {
	spec := map[string]any{}
	for i := range benchFields {
		switch i % 3 {
		case 0:
			spec[fmt.Sprintf("s%02d", i)] = fmt.Sprintf("value-%d", i)
		case 1:
			spec[fmt.Sprintf("i%02d", i)] = int64(i)
		default:
			spec[fmt.Sprintf("b%02d", i)] = i%2 == 0
		}
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(gvk)
	u.SetName(name)
	return u
}

// RunCRD runs the custom-resource benchmark, writing progress to out.
func RunCRD(ctx context.Context, c CRDConfig, out io.Writer) (*CRDResult, error) {
	cs, cfg, err := clients(c.Kubeconfig, false)
	if err != nil {
		return nil, err
	}
	ext, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	res := &CRDResult{SchemaFields: benchFields}
	run := mrand.IntN(1_000_000)
	group := fmt.Sprintf("bench%d.skiff.example.com", run)
	defs := ext.ApiextensionsV1().CustomResourceDefinitions()
	var made []string
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		for _, n := range made {
			_ = defs.Delete(cctx, n, metav1.DeleteOptions{})
		}
		// A definition is gone once its finalizer has run.
		for _, n := range made {
			for cctx.Err() == nil {
				if _, err := defs.Get(cctx, n, metav1.GetOptions{}); apierrors.IsNotFound(err) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		if len(made) > 0 {
			fmt.Fprintf(out, "deleting %d definitions until all are gone: %s\n", len(made), time.Since(start).Round(time.Millisecond))
		}
	}()
	ns := fmt.Sprintf("skiff-bench-crd-%d", run)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	defer func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) }()

	// Create to first object served.
	var readies []time.Duration
	for i := range c.Readies {
		plural, kind := fmt.Sprintf("readies%d", i), fmt.Sprintf("Ready%d", i)
		start := time.Now()
		if _, err := defs.Create(ctx, benchCRD(group, plural, kind), metav1.CreateOptions{}); err != nil {
			return nil, err
		}
		made = append(made, plural+"."+group)
		gvr := schema.GroupVersionResource{Group: group, Version: "v1", Resource: plural}
		for {
			_, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, benchObject(gvr.GroupVersion().WithKind(kind), "first"), metav1.CreateOptions{})
			if err == nil {
				break
			}
			if time.Since(start) > time.Minute || ctx.Err() != nil {
				return nil, fmt.Errorf("definition %s not served within a minute: %w", plural, err)
			}
			time.Sleep(time.Millisecond)
		}
		readies = append(readies, time.Since(start))
	}
	if len(readies) > 0 {
		slices.Sort(readies)
		res.Ready = readies[len(readies)/2]
		fmt.Fprintf(out, "definition created to first object served: median %s (of %d)\n", res.Ready, len(readies))
	}

	// Creates with a 50-field schema.
	gvr := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "widgets"}
	if _, err := defs.Create(ctx, benchCRD(group, "widgets", "Widget"), metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	made = append(made, "widgets."+group)
	if err := waitServed(ctx, dyn, gvr, ns); err != nil {
		return nil, err
	}
	for i, w := range c.Workers {
		cr := createCustom(ctx, dyn.Resource(gvr).Namespace(ns), gvr.GroupVersion().WithKind("Widget"), fmt.Sprintf("w%d-", i), c.Objects, w)
		fmt.Fprintf(out, "custom object creates (%d-field schema), %d workers: %.0f/s (p50 %s, p99 %s, %d errors)\n", benchFields, w, cr.PerSec, cr.P50, cr.P99, cr.Errors)
		res.Creates = append(res.Creates, cr)
		_ = dyn.Resource(gvr).Namespace(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	}

	if c.Webhook {
		if err := webhookFigure(ctx, cs, dyn.Resource(gvr).Namespace(ns), gvr, res, c, out); err != nil {
			return nil, err
		}
	}

	// Many definitions: discovery, OpenAPI and memory.
	res.RSSBefore = idleRSS(ctx, cs, c.Settle, out)
	for i := range c.CRDs {
		plural, kind := fmt.Sprintf("things%d", i), fmt.Sprintf("Thing%d", i)
		if _, err := defs.Create(ctx, benchCRD(group, plural, kind), metav1.CreateOptions{}); err != nil {
			return nil, err
		}
		made = append(made, plural+"."+group)
	}
	if c.CRDs > 0 {
		last := schema.GroupVersionResource{Group: group, Version: "v1", Resource: fmt.Sprintf("things%d", c.CRDs-1)}
		if err := waitServed(ctx, dyn, last, ns); err != nil {
			return nil, err
		}
	}
	res.InstalledDefinitions = len(made)
	rc := cs.Discovery().RESTClient()
	time1 := func(path, accept string) (Latency, error) {
		var lat []time.Duration
		for range c.Requests {
			t0 := time.Now()
			if _, err := rc.Get().AbsPath(path).SetHeader("Accept", accept).DoRaw(ctx); err != nil {
				return Latency{}, fmt.Errorf("GET %s: %w", path, err)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		return Latency{P50: lat[len(lat)/2], P99: lat[len(lat)*99/100]}, nil
	}
	if res.Discovery, err = time1("/apis", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "aggregated discovery with %d definitions: p50 %s, p99 %s\n", len(made), res.Discovery.P50, res.Discovery.P99)
	if res.OpenAPIV3, err = time1("/openapi/v3/apis/"+group+"/v1", "application/json"); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "/openapi/v3/apis/%s/v1 (%d kinds): p50 %s, p99 %s\n", group, len(made), res.OpenAPIV3.P50, res.OpenAPIV3.P99)
	res.RSSAfter = idleRSS(ctx, cs, c.Settle, out)
	if c.CRDs > 0 && res.RSSBefore > 0 {
		fmt.Fprintf(out, "server RSS (after %s idle) %.1f MiB -> %.1f MiB with %d more definitions (%.2f MiB each)\n", c.Settle, res.RSSBefore/(1<<20), res.RSSAfter/(1<<20), c.CRDs, (res.RSSAfter-res.RSSBefore)/(1<<20)/float64(c.CRDs))
	}
	return res, nil
}

// idleRSS reads the server's RSS after leaving it idle for settle.
func idleRSS(ctx context.Context, cs *kubernetes.Clientset, settle time.Duration, out io.Writer) float64 {
	if settle > 0 { // said, so a long quiet wait does not look like a hang
		fmt.Fprintf(out, "waiting %s for the server to settle before reading its RSS (--settle)\n", settle)
	}
	select {
	case <-ctx.Done():
		return 0
	case <-time.After(settle):
	}
	return serverRSS(ctx, cs)
}

func waitServed(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, ns string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not served: %w", gvr, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func createCustom(ctx context.Context, ri dynamic.ResourceInterface, gvk schema.GroupVersionKind, prefix string, n, workers int) CreateResult {
	return timeCreates(n, workers, func(i int) error {
		_, err := ri.Create(ctx, benchObject(gvk, fmt.Sprintf("%s%05d", prefix, i)), metav1.CreateOptions{})
		return err
	})
}

// webhookFigure times one-at-a-time creates without and with a validating
// webhook (served here, on loopback, allowing everything): the difference
// is what a webhook call adds.
func webhookFigure(ctx context.Context, cs *kubernetes.Clientset, ri dynamic.ResourceInterface, gvr schema.GroupVersionResource, res *CRDResult, c CRDConfig, out io.Writer) error {
	caPEM, cert, err := loopbackCert()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		review.Request = nil
		_ = json.NewEncoder(w).Encode(review)
	})}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()
	gvk := gvr.GroupVersion().WithKind("Widget")
	n := max(c.Requests, 100)
	timeCreates := func(prefix string) (time.Duration, time.Duration) {
		lat := make([]time.Duration, 0, n)
		for i := range n {
			t0 := time.Now()
			if _, err := ri.Create(ctx, benchObject(gvk, fmt.Sprintf("%s%05d", prefix, i)), metav1.CreateOptions{}); err == nil {
				lat = append(lat, time.Since(t0))
			}
		}
		slices.Sort(lat)
		if len(lat) == 0 {
			return 0, 0
		}
		return lat[len(lat)/2], lat[len(lat)*99/100]
	}
	res.PlainP50, res.PlainP99 = timeCreates("plain-")
	none := admissionregistrationv1.SideEffectClassNone
	name := fmt.Sprintf("bench-%d", mrand.IntN(1_000_000))
	hooks := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	if _, err := hooks.Create(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "bench.skiff.example.com", SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://" + ln.Addr().String() + "/validate"), CABundle: caPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{gvr.Group}, APIVersions: []string{"v1"}, Resources: []string{gvr.Resource}}}}}},
	}, metav1.CreateOptions{}); err != nil {
		return err
	}
	defer func() { _ = hooks.Delete(context.Background(), name, metav1.DeleteOptions{}) }()
	time.Sleep(500 * time.Millisecond) // the configuration reaches the watch cache
	res.WebhookP50, res.WebhookP99 = timeCreates("hooked-")
	fmt.Fprintf(out, "creates one at a time: p50 %s without a webhook, %s with a validating webhook on loopback (+%s); p99 %s and %s\n",
		res.PlainP50, res.WebhookP50, res.WebhookP50-res.PlainP50, res.PlainP99, res.WebhookP99)
	return nil
}

// loopbackCert is a CA and a serving certificate for 127.0.0.1 it signed.
func loopbackCert() ([]byte, tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench-ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "bench-webhook"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
