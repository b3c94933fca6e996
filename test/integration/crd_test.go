package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apiextensionsv1client "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset/typed/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// cronTabCRD is a definition that exercises what a schema can say:
// defaults, bounds, patterns, enums, a list merged by key, int-or-string,
// preserved unknown fields, the status and scale subresources, printer
// columns and a selectable field.
const cronTabCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    selectableFields: [{jsonPath: .spec.image}]
    additionalPrinterColumns:
    - {name: Spec, type: string, jsonPath: .spec.cronSpec}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas, labelSelectorPath: .status.selector}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [cronSpec]
            x-kubernetes-validations:
            - {rule: "self.policy == 'Allow' || self.replicas <= 2", message: a Forbid policy allows at most 2 replicas}
            - {rule: "!has(oldSelf.image) || has(self.image)", message: image cannot be removed once set}
            properties:
              cronSpec: {type: string, pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'}
              image: {type: string}
              replicas: {type: integer, minimum: 0, maximum: 10, default: 1}
              policy: {type: string, enum: [Allow, Forbid], default: Allow}
              memory:
                type: string
                x-kubernetes-validations:
                - {rule: "isQuantity(self) && quantity(self).isLessThan(quantity('1Gi'))", message: memory must be a quantity under 1Gi}
              homepage:
                type: string
                x-kubernetes-validations:
                - {rule: "isURL(self) && url(self).getScheme() == 'https' && !format.dns1123Subdomain().validate(url(self).getHostname()).hasValue()", message: homepage must be an https URL on a DNS name}
              port: {x-kubernetes-int-or-string: true}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    port: {type: integer}
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
`

var cronTabs = schema.GroupVersionResource{Group: "stable.example.com", Version: "v1", Resource: "crontabs"}

// installCRD applies a definition with kubectl and waits until it is
// Established.
func installCRD(t *testing.T, s *server, manifest, name string) {
	t.Helper()
	s.mustKubectlStdin(manifest, "apply", "--server-side", "-f", "-")
	s.mustKubectl("wait", "--for=condition=Established", "--timeout=10s", "crd/"+name)
}

// TestCustomResources installs a definition and drives its objects with
// kubectl, client-go's dynamic client and raw requests: defaults, schema
// validation, pruning, the status and scale subresources, tables, watch,
// field selectors, server-side apply, and the removal of its objects with
// the definition.
func TestCustomResources(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	ext := apiextensionsclient.NewForConfigOrDie(s.restConfig())
	dyn := dynamic.NewForConfigOrDie(s.restConfig())
	installCRD(t, s, cronTabCRD, "crontabs.stable.example.com")

	crd, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "crontabs.stable.example.com", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		typ    apiextensionsv1.CustomResourceDefinitionConditionType
		reason string
	}{{apiextensionsv1.NamesAccepted, "NoConflicts"}, {apiextensionsv1.Established, "InitialNamesAccepted"}} {
		c := crdCondition(crd, want.typ)
		if c == nil || c.Status != apiextensionsv1.ConditionTrue || c.Reason != want.reason {
			t.Errorf("condition %s = %+v, want True %s", want.typ, c, want.reason)
		}
	}
	if got := crd.Status.AcceptedNames; got.Kind != "CronTab" || got.ListKind != "CronTabList" || got.Plural != "crontabs" {
		t.Errorf("accepted names %+v", got)
	}
	if got := crd.Status.StoredVersions; len(got) != 1 || got[0] != "v1" {
		t.Errorf("stored versions %v", got)
	}
	// The group-version has its local APIService, Available, as the core
	// group's has (named "v1.").
	for _, name := range []string{"v1.stable.example.com", "v1."} {
		waitFor(t, 10*time.Second, "the local APIService "+name, func() bool {
			out, _, err := s.kubectl("get", "apiservice", name, "-o", `jsonpath={.status.conditions[?(@.type=="Available")].status}`)
			return err == nil && out == "True"
		})
	}

	// Defaults fill what the object leaves out.
	s.mustKubectlStdin(`apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: nightly, labels: {team: a}}
spec: {cronSpec: "0 3 * * *", image: backup:1, port: http, extra: {anything: [1, 2]}}
`, "apply", "-f", "-")
	ct := dyn.Resource(cronTabs).Namespace("default")
	u, err := ct.Get(ctx, "nightly", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); r != 1 {
		t.Errorf("defaulted replicas = %d, want 1", r)
	}
	if p, _, _ := unstructured.NestedString(u.Object, "spec", "policy"); p != "Allow" {
		t.Errorf("defaulted policy = %q, want Allow", p)
	}
	if x, _, _ := unstructured.NestedSlice(u.Object, "spec", "extra", "anything"); len(x) != 2 {
		t.Errorf("preserved unknown fields lost: %v", u.Object["spec"])
	}
	if u.GetGeneration() != 1 {
		t.Errorf("generation = %d, want 1", u.GetGeneration())
	}

	// The table has the printer columns; a short name and category work.
	table := s.mustKubectl("get", "ct")
	if !strings.Contains(table, "SPEC") || !strings.Contains(table, "REPLICAS") || !strings.Contains(table, "0 3 * * *") {
		t.Errorf("kubectl get ct:\n%s", table)
	}
	if all := s.mustKubectl("get", "all"); !strings.Contains(all, "crontab.stable.example.com/nightly") {
		t.Errorf("kubectl get all does not list the custom resource (category all):\n%s", all)
	}

	// A schema violation is a 422 naming each field.
	_, errOut, err := s.kubectlStdin(`apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: broken}
spec: {cronSpec: "every day", replicas: 20, policy: Sometimes, ports: [{port: 1}]}
`, "create", "-f", "-")
	for _, want := range []string{`The CronTab "broken" is invalid`, "spec.replicas: Invalid value: 20", "less than or equal to 10",
		`spec.cronSpec: Invalid value: "every day"`, `spec.policy: Unsupported value: "Sometimes"`, `spec.ports[0].name: Required value`} {
		if err == nil || !strings.Contains(errOut, want) {
			t.Errorf("invalid object: want %q in\n%s", want, errOut)
		}
	}
	if _, err := ct.Get(ctx, "broken", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the invalid object was stored: %v", err)
	}

	// CEL rules: a plain rule and a transition rule, with their messages.
	_, errOut, err = s.kubectlStdin(`apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: strict}
spec: {cronSpec: "* * * * *", policy: Forbid, replicas: 3}
`, "create", "-f", "-")
	if err == nil || !strings.Contains(errOut, `spec: Invalid value: "object": a Forbid policy allows at most 2 replicas`) {
		t.Errorf("CEL rule: %v %s", err, errOut)
	}
	_, errOut, err = s.kubectl("patch", "ct", "nightly", "--type=json", "-p", `[{"op":"remove","path":"/spec/image"}]`)
	if err == nil || !strings.Contains(errOut, "image cannot be removed once set") {
		t.Errorf("CEL transition rule: %v %s", err, errOut)
	}

	// Unknown fields: refused under Strict (kubectl's default), pruned
	// without it.
	unknown := `apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: loose}
spec: {cronSpec: "* * * * *", colour: blue}
`
	if _, errOut, err := s.kubectlStdin(unknown, "create", "-f", "-"); err == nil || !strings.Contains(errOut, `strict decoding error: unknown field "spec.colour"`) {
		t.Errorf("unknown field under Strict: %v %s", err, errOut)
	}
	// Warn: created, each dropped field named in a warning.
	_, errOut, err = s.kubectlStdin(strings.Replace(unknown, "name: loose", "name: warned", 1), "create", "--validate=warn", "-f", "-")
	if err != nil || !strings.Contains(errOut, `Warning: unknown field "spec.colour"`) {
		t.Errorf("unknown field under Warn: %v %s", err, errOut)
	}
	s.mustKubectlStdin(unknown, "create", "--validate=false", "-f", "-")
	u, err = ct.Get(ctx, "loose", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, found, _ := unstructured.NestedString(u.Object, "spec", "colour"); found {
		t.Errorf("unknown field was stored: %v", u.Object["spec"])
	}

	// Status: the main resource ignores it, the subresource writes only it;
	// generation counts spec changes only.
	u, _ = ct.Get(ctx, "nightly", metav1.GetOptions{})
	_ = unstructured.SetNestedField(u.Object, int64(7), "status", "replicas")
	_ = unstructured.SetNestedField(u.Object, "backup:2", "spec", "image")
	u, err = ct.Update(ctx, u, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, found, _ := unstructured.NestedInt64(u.Object, "status", "replicas"); found || u.GetGeneration() != 2 {
		t.Errorf("update of the main resource: status %v, generation %d (want no status, generation 2)", u.Object["status"], u.GetGeneration())
	}
	_ = unstructured.SetNestedField(u.Object, int64(3), "status", "replicas")
	_ = unstructured.SetNestedField(u.Object, "team=a", "status", "selector")
	_ = unstructured.SetNestedField(u.Object, "ignored:3", "spec", "image")
	u, err = ct.UpdateStatus(ctx, u, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img, _, _ := unstructured.NestedString(u.Object, "spec", "image"); img != "backup:2" || u.GetGeneration() != 2 {
		t.Errorf("status update changed spec: image %q generation %d", img, u.GetGeneration())
	}

	// Scale, as kubectl scale and the HPA use it.
	s.mustKubectl("scale", "ct", "nightly", "--replicas=4")
	sc, err := ct.Get(ctx, "nightly", metav1.GetOptions{}, "scale")
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructured.NestedInt64(sc.Object, "spec", "replicas"); r != 4 || sc.GetKind() != "Scale" {
		t.Errorf("scale: %v", sc.Object)
	}
	if st, _, _ := unstructured.NestedInt64(sc.Object, "status", "replicas"); st != 3 {
		t.Errorf("scale status.replicas = %d, want 3", st)
	}
	if sel, _, _ := unstructured.NestedString(sc.Object, "status", "selector"); sel != "team=a" {
		t.Errorf("scale status.selector = %q", sel)
	}

	// A field selector on the selectable field.
	l, err := ct.List(ctx, metav1.ListOptions{FieldSelector: "spec.image=backup:2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 1 || l.Items[0].GetName() != "nightly" || l.GetKind() != "CronTabList" {
		t.Errorf("field selector: %d items, kind %q", len(l.Items), l.GetKind())
	}
	if _, err := ct.List(ctx, metav1.ListOptions{FieldSelector: "spec.colour=blue"}); !apierrors.IsBadRequest(err) {
		t.Errorf("selecting on a field that is not selectable: %v, want 400", err)
	}

	// Watch sees changes in order.
	w, err := ct.Watch(ctx, metav1.ListOptions{ResourceVersion: u.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	s.mustKubectl("patch", "ct", "nightly", "--type=merge", "-p", `{"spec":{"image":"backup:5"}}`)
	s.mustKubectl("delete", "ct", "loose")
	var seen []string
	for len(seen) < 3 {
		select {
		case ev := <-w.ResultChan():
			seen = append(seen, string(ev.Type)+" "+ev.Object.(*unstructured.Unstructured).GetName())
		case <-time.After(10 * time.Second):
			t.Fatalf("watch saw only %v", seen)
		}
	}
	w.Stop()
	if strings.Join(seen, ",") != "MODIFIED nightly,MODIFIED nightly,DELETED loose" {
		t.Errorf("watch events %v, want the scale, the patch and the delete", seen)
	}

	// Server-side apply merges a list by its map keys: two managers each
	// own their port.
	for _, m := range []struct{ manager, port string }{{"web", "{name: http, port: 80}"}, {"metrics", "{name: metrics, port: 9090}"}} {
		s.mustKubectlStdin("apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: nightly}\nspec: {cronSpec: \"0 3 * * *\", ports: ["+m.port+"]}\n",
			"apply", "--server-side", "--force-conflicts", "--field-manager="+m.manager, "-f", "-")
	}
	u, _ = ct.Get(ctx, "nightly", metav1.GetOptions{})
	if ports, _, _ := unstructured.NestedSlice(u.Object, "spec", "ports"); len(ports) != 2 {
		t.Errorf("ports after two managers' applies: %v (want both, merged by name)", ports)
	}
	managers := map[string]bool{}
	for _, e := range u.GetManagedFields() {
		managers[e.Manager] = true
	}
	if !managers["web"] || !managers["metrics"] {
		t.Errorf("managed fields: %v", u.GetManagedFields())
	}

	// Strategic merge patch and protobuf are refused as upstream refuses
	// them for custom resources.
	if _, err := ct.Patch(ctx, "nightly", types.StrategicMergePatchType, []byte(`{"spec":{"image":"x"}}`), metav1.PatchOptions{}); !isStatus(err, http.StatusUnsupportedMediaType) {
		t.Errorf("strategic merge patch: %v, want 415", err)
	}
	if code := rawStatus(t, s, http.MethodGet, "/apis/stable.example.com/v1/namespaces/default/crontabs/nightly", "application/vnd.kubernetes.protobuf", "", nil); code != http.StatusNotAcceptable {
		t.Errorf("GET accepting protobuf only: %d, want 406", code)
	}
	if code := rawStatus(t, s, http.MethodPost, "/apis/stable.example.com/v1/namespaces/default/crontabs", "", "application/vnd.kubernetes.protobuf", []byte("k8s\x00")); code != http.StatusUnsupportedMediaType {
		t.Errorf("POST of protobuf: %d, want 415", code)
	}

	// Rules with Kubernetes' quantity, URL and format libraries (on an
	// object of their own: the checks above count nightly's generations).
	s.mustKubectlStdin(`apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: libs}
spec: {cronSpec: "* * * * *"}
`, "create", "-f", "-")
	for _, tc := range []struct{ patch, refusal string }{
		{`{"spec":{"memory":"512Mi","homepage":"https://example.com/docs"}}`, ""},
		{`{"spec":{"memory":"2Gi"}}`, `spec.memory: Invalid value: "string": memory must be a quantity under 1Gi`},
		{`{"spec":{"memory":"lots"}}`, `memory must be a quantity under 1Gi`},
		{`{"spec":{"homepage":"http://example.com/"}}`, `spec.homepage: Invalid value: "string": homepage must be an https URL on a DNS name`},
		{`{"spec":{"homepage":"https://Not_A_Host/"}}`, `homepage must be an https URL on a DNS name`},
	} {
		_, errOut, err := s.kubectl("patch", "ct", "libs", "--type=merge", "-p", tc.patch)
		if tc.refusal == "" && err != nil || tc.refusal != "" && (err == nil || !strings.Contains(errOut, tc.refusal)) {
			t.Errorf("patch %s: %v %s; want refusal %q", tc.patch, err, errOut, tc.refusal)
		}
	}

	// kubectl explain reads the published schema.
	if out := s.mustKubectl("explain", "crontab.spec.ports"); !strings.Contains(out, "name") || !strings.Contains(out, "<integer>") {
		t.Errorf("kubectl explain crontab.spec.ports:\n%s", out)
	}

	// Deleting the definition deletes its objects first, then it goes, and
	// so does the resource.
	s.mustKubectl("delete", "crd", "crontabs.stable.example.com", "--timeout=20s")
	if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, "crontabs.stable.example.com", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("definition after delete: %v", err)
	}
	if _, err := ct.List(ctx, metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("list after the definition went: %v, want 404", err)
	}
	if n := countKeys(t, s, "/registry/stable.example.com/crontabs/"); n != 0 {
		t.Errorf("%d objects left in etcd after the definition went", n)
	}
}

// TestRealCRDs installs unmodified definitions of widely used projects and
// uses their objects: cert-manager's Certificate (list-map conditions in a
// status subresource, printer columns with filters), and the Gateway API's
// ReferenceGrant (two versions, patterns and bounds).
func TestRealCRDs(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(s.restConfig())
	for _, f := range []struct{ file, name string }{
		{"cert-manager.io_certificates.yaml", "certificates.cert-manager.io"},
		{"gateway.networking.k8s.io_referencegrants.yaml", "referencegrants.gateway.networking.k8s.io"},
	} {
		raw, err := os.ReadFile("testdata/crds/" + f.file)
		if err != nil {
			t.Fatal(err)
		}
		installCRD(t, s, string(raw), f.name)
	}

	// cert-manager: a Certificate, its status written as cert-manager does
	// (a Ready condition through the status subresource), shown by kubectl.
	s.mustKubectlStdin(`apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web}
spec:
  secretName: web-tls
  dnsNames: [example.com]
  issuerRef: {name: ca, kind: ClusterIssuer}
  privateKey: {algorithm: ECDSA, size: 256}
`, "apply", "--server-side", "-f", "-")
	certs := dyn.Resource(schema.GroupVersionResource{Group: "cert-manager.io", Version: "v1", Resource: "certificates"}).Namespace("default")
	status := []byte(`{"apiVersion":"cert-manager.io/v1","kind":"Certificate","metadata":{"name":"web"},"status":{"conditions":[{"type":"Ready","status":"True","reason":"Issued","message":"Certificate is up to date and has not expired","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`)
	if _, err := certs.Patch(ctx, "web", types.ApplyPatchType, status, metav1.PatchOptions{FieldManager: "cert-manager-certificates-readiness"}, "status"); err != nil {
		t.Fatal(err)
	}
	out := s.mustKubectl("get", "certs", "-o", "wide")
	for _, want := range []string{"READY", "SECRET", "ISSUER", "STATUS", "True", "web-tls", "ca", "Certificate is up to date"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get certs -o wide lacks %q:\n%s", want, out)
		}
	}
	_, errOut, err := s.kubectlStdin(`apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: bad}
spec: {secretName: s, privateKey: {algorithm: DSA}}
`, "create", "-f", "-")
	if err == nil || !strings.Contains(errOut, `spec.privateKey.algorithm: Unsupported value: "DSA"`) || !strings.Contains(errOut, "spec.issuerRef: Required value") {
		t.Errorf("invalid Certificate: %v\n%s", err, errOut)
	}
	if out := s.mustKubectl("explain", "certificate.spec.privateKey.algorithm"); !strings.Contains(out, "Ed25519") {
		t.Errorf("kubectl explain certificate.spec.privateKey.algorithm:\n%s", out)
	}

	// Gateway API: a ReferenceGrant written at v1beta1 (the storage
	// version) reads at v1 and back.
	s.mustKubectlStdin(`apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: allow-routes}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: web}]
  to: [{group: "", kind: Service}]
`, "apply", "-f", "-")
	v1 := dyn.Resource(schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "referencegrants"}).Namespace("default")
	g, err := v1.Get(ctx, "allow-routes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g.GetAPIVersion() != "gateway.networking.k8s.io/v1" {
		t.Errorf("read at v1: apiVersion %q", g.GetAPIVersion())
	}
	_ = unstructured.SetNestedField(g.Object, "Secret", "spec", "to", "0", "kind")
	if from, _, _ := unstructured.NestedSlice(g.Object, "spec", "from"); len(from) != 1 {
		t.Errorf("spec.from at v1: %v", from)
	}
	if out := s.mustKubectl("get", "referencegrants.v1beta1.gateway.networking.k8s.io", "allow-routes", "-o", "jsonpath={.apiVersion}"); out != "gateway.networking.k8s.io/v1beta1" {
		t.Errorf("read at v1beta1: %q", out)
	}
	if raw := s.etcdValue(t, "/registry/gateway.networking.k8s.io/referencegrants/default/allow-routes"); !bytes.Contains(raw, []byte(`"apiVersion":"gateway.networking.k8s.io/v1beta1"`)) {
		t.Errorf("stored object is not JSON at the storage version: %s", raw)
	}
	_, errOut, err = s.kubectlStdin(`apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata: {name: bad}
spec:
  from: [{group: "Not A Group", kind: HTTPRoute, namespace: web}]
  to: []
`, "create", "-f", "-")
	if err == nil || !strings.Contains(errOut, "spec.from[0].group: Invalid value") || !strings.Contains(errOut, "spec.to: Invalid value") {
		t.Errorf("invalid ReferenceGrant: %v\n%s", err, errOut)
	}
}

// TestCRDNamesAndValidation: a definition asking for names another holds is
// not accepted (and not served); invalid definitions are refused with
// their causes.
func TestCRDNamesAndValidation(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	ext := apiextensionsclient.NewForConfigOrDie(s.restConfig()).ApiextensionsV1().CustomResourceDefinitions()
	def := func(plural, kind string, short ...string) string {
		return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: ` + plural + `.names.example.com}
spec:
  group: names.example.com
  scope: Cluster
  names: {plural: ` + plural + `, singular: ` + strings.TrimSuffix(plural, "s") + `, kind: ` + kind + `, shortNames: [` + strings.Join(short, ",") + `]}
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
`
	}
	installCRD(t, s, def("widgets", "Widget", "wd"), "widgets.names.example.com")
	s.mustKubectlStdin(def("gadgets", "Widget"), "apply", "-f", "-")
	s.mustKubectlStdin(def("gizmos", "Gizmo", "wd"), "apply", "-f", "-")
	for name, reason := range map[string]string{"gadgets.names.example.com": "KindConflict", "gizmos.names.example.com": "ShortNamesConflict"} {
		var c *apiextensionsv1.CustomResourceDefinitionCondition
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			crd, err := ext.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if c = crdCondition(crd, apiextensionsv1.NamesAccepted); c != nil {
				if e := crdCondition(crd, apiextensionsv1.Established); e == nil || e.Status != apiextensionsv1.ConditionFalse || e.Reason != "NotAccepted" {
					t.Errorf("%s Established = %+v, want False NotAccepted", name, e)
				}
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if c == nil || c.Status != apiextensionsv1.ConditionFalse || c.Reason != reason {
			t.Errorf("%s NamesAccepted = %+v, want False %s", name, c, reason)
		}
	}
	if _, err := dynamic.NewForConfigOrDie(s.restConfig()).Resource(schema.GroupVersionResource{Group: "names.example.com", Version: "v1", Resource: "gadgets"}).List(ctx, metav1.ListOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a definition whose names were refused is served: %v", err)
	}

	// A deprecated version warns every request, as kubectl shows.
	s.mustKubectlStdin(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: olds.names.example.com}
spec:
  group: names.example.com
  scope: Cluster
  names: {plural: olds, kind: Old}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
  - {name: v1beta1, served: true, storage: false, deprecated: true, schema: {openAPIV3Schema: {type: object}}}
`, "apply", "-f", "-")
	s.mustKubectl("wait", "--for=condition=Established", "--timeout=10s", "crd/olds.names.example.com")
	if _, errOut, err := s.kubectl("get", "olds.v1beta1.names.example.com"); err != nil || !strings.Contains(errOut, "Warning: names.example.com/v1beta1 Old is deprecated") {
		t.Errorf("deprecated version: %v %q", err, errOut)
	}
	if _, errOut, _ := s.kubectl("get", "olds.v1.names.example.com"); strings.Contains(errOut, "deprecated") {
		t.Errorf("the served version warns: %q", errOut)
	}

	for _, c := range []struct {
		name, manifest string
		causes         []string
	}{
		{"no type at the root", `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.bad.example.com}
spec:
  group: bad.example.com
  scope: Namespaced
  names: {plural: things, kind: Thing}
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {properties: {spec: {properties: {a: {type: string}}}}}}}]
`, []string{"spec.versions[0].schema.openAPIV3Schema.type: Required value: must not be empty at the root",
			"spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"}},
		{"a rule that does not compile and one over the cost budget", `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.bad.example.com}
spec:
  group: bad.example.com
  scope: Namespaced
  names: {plural: things, kind: Thing}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          l: {type: array, items: {type: string}}
        x-kubernetes-validations:
        - rule: "self.l.all(a, self.l.all(b, a == b))"
        - rule: "self.nope +"
`, []string{"spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[0].rule", "estimated rule cost exceeds budget",
			"spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations[1].rule", "compilation failed"}},
		{"two storage versions and a bad name", `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.bad.example.com}
spec:
  group: bad.example.com
  scope: Sideways
  names: {plural: stuff, kind: Thing}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
  - {name: v2, served: true, storage: true}
`, []string{`metadata.name: Invalid value: "things.bad.example.com": must be spec.names.plural+"."+spec.group`,
			`spec.scope: Unsupported value: "Sideways"`, "must have exactly one version marked as storage version",
			"spec.versions[1].schema.openAPIV3Schema: Required value: schemas are required"}},
	} {
		_, errOut, err := s.kubectlStdin(c.manifest, "create", "-f", "-")
		if err == nil || !strings.Contains(errOut, "is invalid") {
			t.Errorf("%s: %v %s", c.name, err, errOut)
		}
		for _, cause := range c.causes {
			if !strings.Contains(errOut, cause) {
				t.Errorf("%s: want %q in\n%s", c.name, cause, errOut)
			}
		}
	}
}

// TestCustomResourcesFollowedByControllers: the garbage collector, namespace
// deletion and quota follow a resource defined after they started.
func TestCustomResourcesFollowedByControllers(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	cs := s.client()
	dyn := dynamic.NewForConfigOrDie(s.restConfig())
	installCRD(t, s, cronTabCRD, "crontabs.stable.example.com")
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "jobs"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ct := dyn.Resource(cronTabs).Namespace("jobs")

	// Quota counts the custom resource.
	if _, err := cs.CoreV1().ResourceQuotas("jobs").Create(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "q"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/crontabs.stable.example.com": resource.MustParse("1")}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the quota to be counted", func() bool {
		q, err := cs.CoreV1().ResourceQuotas("jobs").Get(ctx, "q", metav1.GetOptions{})
		_, counted := q.Status.Used["count/crontabs.stable.example.com"]
		return err == nil && counted
	})
	newCronTab := func(name string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("stable.example.com/v1")
		u.SetKind("CronTab")
		u.SetName(name)
		_ = unstructured.SetNestedField(u.Object, "* * * * *", "spec", "cronSpec")
		return u
	}
	owner, err := ct.Create(ctx, newCronTab("owner"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ct.Create(ctx, newCronTab("second"), metav1.CreateOptions{}); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "exceeded quota") {
		t.Errorf("second CronTab over a quota of 1: %v", err)
	}

	// A ConfigMap owned by the custom object goes with it.
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owned", OwnerReferences: []metav1.OwnerReference{{
		APIVersion: "stable.example.com/v1", Kind: "CronTab", Name: owner.GetName(), UID: owner.GetUID()}}}}
	if _, err := cs.CoreV1().ConfigMaps("jobs").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the collector has seen both; the dependent must stay while its owner lives
	if _, err := cs.CoreV1().ConfigMaps("jobs").Get(ctx, "owned", metav1.GetOptions{}); err != nil {
		t.Fatalf("dependent of a live custom owner: %v", err)
	}
	if err := ct.Delete(ctx, "owner", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the dependent ConfigMap to be collected", func() bool {
		_, err := cs.CoreV1().ConfigMaps("jobs").Get(ctx, "owned", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})

	// The quota's use drops when the controller recounts.
	waitFor(t, 30*time.Second, "the quota to count the deleted CronTab out", func() bool {
		q, err := cs.CoreV1().ResourceQuotas("jobs").Get(ctx, "q", metav1.GetOptions{})
		used := q.Status.Used["count/crontabs.stable.example.com"]
		return err == nil && used.IsZero()
	})

	// Deleting the namespace deletes its custom objects.
	if _, err := ct.Create(ctx, newCronTab("left"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Namespaces().Delete(ctx, "jobs", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the namespace to go", func() bool {
		_, err := cs.CoreV1().Namespaces().Get(ctx, "jobs", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if n := countKeys(t, s, "/registry/stable.example.com/crontabs/jobs/"); n != 0 {
		t.Errorf("%d custom objects left of the deleted namespace", n)
	}
}

func crdCondition(c *apiextensionsv1.CustomResourceDefinition, t apiextensionsv1.CustomResourceDefinitionConditionType) *apiextensionsv1.CustomResourceDefinitionCondition {
	for i := range c.Status.Conditions {
		if c.Status.Conditions[i].Type == t {
			return &c.Status.Conditions[i]
		}
	}
	return nil
}

func isStatus(err error, code int32) bool {
	var st apierrors.APIStatus
	if se, ok := err.(apierrors.APIStatus); ok {
		st = se
	}
	return st != nil && st.Status().Code == code
}

// rawStatus sends one request with the admin's credentials and returns its
// status code.
func rawStatus(t *testing.T, s *server, method, path, accept, contentType string, body []byte) int {
	t.Helper()
	cfg := rest.CopyConfig(s.restConfig())
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(method, cfg.Host+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st metav1.Status
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return resp.StatusCode
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countKeys counts the etcd keys under prefix.
func countKeys(t *testing.T, s *server, prefix string) int64 {
	t.Helper()
	c := s.etcdClient()
	defer c.Close()
	resp, err := c.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// TestCRDValidationRatcheting: after a definition's schema is tightened,
// stored objects stay writable: an update that leaves an invalid value as
// it was passes (a CEL rule the value breaks becomes a warning), while
// changing that value, or writing a new object, meets the new schema.
func TestCRDValidationRatcheting(t *testing.T) {
	s := startServer(t)
	def := func(nameSchema string) string {
		return `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: ratchets.ratchet.example.com}
spec:
  group: ratchet.example.com
  scope: Namespaced
  names: {plural: ratchets, singular: ratchet, kind: Ratchet}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              name: ` + nameSchema + `
              size: {type: integer}
`
	}
	installCRD(t, s, def(`{type: string}`), "ratchets.ratchet.example.com")
	s.mustKubectlStdin("apiVersion: ratchet.example.com/v1\nkind: Ratchet\nmetadata: {name: old, namespace: default}\nspec: {name: toolong, size: 1}\n", "apply", "-f", "-")
	tight := `{type: string, maxLength: 3, x-kubernetes-validations: [{rule: "self.startsWith('x')", message: name must start with x}]}`
	s.mustKubectlStdin(def(tight), "apply", "--server-side", "-f", "-")
	newObject := "apiVersion: ratchet.example.com/v1\nkind: Ratchet\nmetadata: {name: new, namespace: default}\nspec: {name: toolong, size: 1}\n"
	waitFor(t, 10*time.Second, "the tightened schema", func() bool {
		_, stderr, err := s.kubectlStdin(newObject, "create", "-f", "-")
		return err != nil && strings.Contains(stderr, "Too long: may not be more than 3 bytes")
	})
	patch := func(p string) (string, error) {
		_, stderr, err := s.kubectl("patch", "ratchet", "old", "--type=merge", "-p", p)
		return stderr, err
	}
	stderr, err := patch(`{"spec":{"size":2}}`)
	if err != nil {
		t.Fatalf("an update leaving the invalid name as it was: %v: %s", err, stderr)
	}
	if !strings.Contains(stderr, "Warning:") || !strings.Contains(stderr, "name must start with x") {
		t.Errorf("the ratcheted rule did not warn: %q", stderr)
	}
	if got := s.mustKubectl("get", "ratchet", "old", "-o", "jsonpath={.spec.size}"); got != "2" {
		t.Errorf("size after the update = %q, want 2", got)
	}
	for p, want := range map[string]string{
		`{"spec":{"name":"toolonger"}}`: "Too long: may not be more than 3 bytes",
		`{"spec":{"name":"abc"}}`:       "name must start with x",
	} {
		if stderr, err := patch(p); err == nil || !strings.Contains(stderr, want) {
			t.Errorf("patch %s: %v %q, want a refusal naming %q", p, err, stderr, want)
		}
	}
	if stderr, err := patch(`{"spec":{"name":"xyz"}}`); err != nil {
		t.Errorf("a valid name: %v %s", err, stderr)
	}
}

// TestManyDefinitionsDeleted: deleting many definitions at once, while
// other objects change, removes them all and leaves every watch cache
// following etcd. On the embedded etcd's in-process client, the burst of
// watch cancellations once stalled the stream all caches shared, and
// definitions stayed Terminating for good.
func TestManyDefinitionsDeleted(t *testing.T) {
	s := startServer(t)
	ext := apiextensionsclient.NewForConfigOrDie(s.restConfig()).ApiextensionsV1().CustomResourceDefinitions()
	for round := range 2 {
		deleteManyDefinitions(t, s, ext, round)
	}
}

func deleteManyDefinitions(t *testing.T, s *server, ext apiextensionsv1client.CustomResourceDefinitionInterface, round int) {
	// A stalled server fails the test, not hangs it.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const n = 150
	names := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		plural := fmt.Sprintf("many%d", i)
		names[i] = plural + ".many.example.com"
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ext.Create(ctx, &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: plural + ".many.example.com"},
				Spec: apiextensionsv1.CustomResourceDefinitionSpec{Group: "many.example.com", Scope: apiextensionsv1.NamespaceScoped,
					Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: plural, Kind: fmt.Sprintf("Many%d", i)},
					Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
						Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(true)}}}}}}, metav1.CreateOptions{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 60*time.Second, "every definition established", func() bool {
		l, err := ext.List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		established := 0
		for i := range l.Items {
			if c := crdCondition(&l.Items[i], apiextensionsv1.Established); c != nil && c.Status == apiextensionsv1.ConditionTrue {
				established++
			}
		}
		return established == n
	})
	// Other writes flow while the definitions go.
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			cms := s.client().CoreV1().ConfigMaps("default")
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("flow-%d-%d-%d", round, w, i)}}, metav1.CreateOptions{})
			}
		}()
	}
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ext.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Errorf("delete %s: %v", name, err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	writers.Wait()
	waitFor(t, 60*time.Second, "every definition gone", func() bool {
		l, err := ext.List(ctx, metav1.ListOptions{})
		return err == nil && len(l.Items) == 0
	})
	// The caches still follow etcd: an object written now is listed from
	// the cache (resourceVersion 0) at once.
	after := fmt.Sprintf("after-%d", round)
	if _, err := s.client().CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: after}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the new object in the cache", func() bool {
		l, err := s.client().CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{ResourceVersion: "0", FieldSelector: "metadata.name=" + after})
		return err == nil && len(l.Items) == 1
	})
	if l, err := ext.List(ctx, metav1.ListOptions{ResourceVersion: "0"}); err != nil || len(l.Items) != 0 {
		t.Errorf("definitions in the cache after all were deleted: %d, %v", len(l.Items), err)
	}
}
