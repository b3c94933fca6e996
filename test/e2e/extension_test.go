package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/test/poll"
)

// serviceCert makes a CA and a serving certificate for the Service's DNS
// name, as the API server verifies it (<service>.<namespace>.svc).
func serviceCert(t *testing.T, dnsName string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e-extension-ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dnsName}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), DNSNames: []string{dnsName}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// TestExtensionPods: software that extends the API, run as pods built here
// (testdata/extension): an aggregated API server reached through the API
// server and listed in its discovery, a mutating admission webhook and a
// CRD conversion webhook served over HTTPS to the Service and verified by
// caBundle, and an operator on client-go informers that reconciles a
// custom resource into a ConfigMap it owns (which the garbage collector
// removes with its Widget).
func TestExtensionPods(t *testing.T) {
	const image = "skiff.test/extension:1"
	programImage(t, "extension", image)
	ctx := context.Background()
	ns := namespace(t)
	caPEM, certPEM, keyPEM := serviceCert(t, "ext."+ns+".svc")
	if _, err := cl.client.CoreV1().Secrets(ns).Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ext-certs"}, Type: v1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ca := base64.StdEncoding.EncodeToString(caPEM)
	apply := func(manifest string) {
		t.Helper()
		if out, err := cl.skiffCtx(ctx, []byte(manifest), "kubectl", "apply", "-f", "-"); err != nil {
			t.Fatalf("kubectl apply: %v\n%s\n%s", err, out, manifest)
		}
	}
	t.Cleanup(func() {
		_, _ = cl.skiff("kubectl", "delete", "--ignore-not-found", "apiservice/v1alpha1.wardle.example.com", "mutatingwebhookconfiguration/"+ns,
			"crd/widgets.example.com", "clusterrole/"+ns, "clusterrolebinding/"+ns)
		_, _ = cl.skiff("kubectl", "delete", "--ignore-not-found", "-n", "kube-system", "rolebinding/"+ns)
	})
	apply(fmt.Sprintf(`apiVersion: v1
kind: ServiceAccount
metadata: {name: ext, namespace: %[1]s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: %[1]s}
rules:
- {apiGroups: [example.com], resources: [widgets], verbs: [get, list, watch]}
- {apiGroups: [example.com], resources: [widgets/status], verbs: [update]}
- {apiGroups: [""], resources: [configmaps], verbs: [get, create, update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %[1]s}
subjects: [{kind: ServiceAccount, name: ext, namespace: %[1]s}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: %[1]s, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{kind: ServiceAccount, name: ext, namespace: %[1]s}]
---
apiVersion: v1
kind: Pod
metadata: {name: ext-server, namespace: %[1]s, labels: {app: ext}}
spec:
  serviceAccountName: ext
  terminationGracePeriodSeconds: 1
  containers:
  - name: serve
    image: %[2]s
    args: [serve]
    ports: [{containerPort: 8443}]
    readinessProbe: {httpGet: {scheme: HTTPS, port: 8443, path: /healthz}, periodSeconds: 1}
    volumeMounts: [{name: certs, mountPath: /certs, readOnly: true}]
  volumes: [{name: certs, secret: {secretName: ext-certs}}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: %[1]s}
spec:
  selector: {app: ext}
  ports: [{port: 443, targetPort: 8443}]
---
apiVersion: v1
kind: Pod
metadata: {name: operator, namespace: %[1]s}
spec:
  serviceAccountName: ext
  terminationGracePeriodSeconds: 1
  containers: [{name: operator, image: %[2]s, args: [operator]}]
`, ns, image))
	waitRunningReady(t, ns, "ext-server")
	apply(fmt.Sprintf(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  conversion:
    strategy: Webhook
    webhook:
      conversionReviewVersions: [v1]
      clientConfig: {service: {namespace: %[1]s, name: ext, path: /convert}, caBundle: %[2]s}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: string}}}
          status: {type: object, properties: {observedSize: {type: string}, ready: {type: boolean}}}
  - name: v2
    served: true
    storage: false
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {replicas: {type: integer}}}
          status: {type: object, properties: {observedSize: {type: string}, ready: {type: boolean}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: %[1]s}
webhooks:
- name: widgets.extension.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {service: {namespace: %[1]s, name: ext, path: /mutate}, caBundle: %[2]s}
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %[1]s}}
  rules: [{operations: [CREATE], apiGroups: [example.com], apiVersions: ["*"], resources: [widgets]}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1alpha1.wardle.example.com}
spec:
  group: wardle.example.com
  version: v1alpha1
  groupPriorityMinimum: 2000
  versionPriority: 200
  service: {namespace: %[1]s, name: ext, port: 443}
  caBundle: %[2]s
`, ns, ca))
	cl.kubectl(t, "wait", "--for=condition=Established", "--timeout=30s", "crd/widgets.example.com")
	cl.kubectl(t, "wait", "--for=condition=Available", "--timeout=60s", "apiservice/v1alpha1.wardle.example.com")

	// The aggregated API, through the API server, as the caller.
	out, err := cl.skiffCtx(ctx, []byte("apiVersion: wardle.example.com/v1alpha1\nkind: Flunder\nmetadata: {name: f1}\n"), "kubectl", "create", "-n", ns, "-f", "-")
	if err != nil {
		t.Fatalf("create flunder: %v %s", err, out)
	}
	if got := cl.kubectl(t, "get", "flunder", "f1", "-n", ns, "-o", `jsonpath={.metadata.annotations.wardle\.example\.com/created-by}`); got != "system:admin" {
		t.Errorf("the aggregated server saw %q", got)
	}
	if got := cl.kubectl(t, "api-resources", "--api-group=wardle.example.com", "--no-headers"); !strings.Contains(got, "flunders") {
		t.Errorf("kubectl api-resources: %q", got)
	}

	// A Widget written at v2 is converted, labelled by the webhook, and
	// reconciled by the operator.
	apply(fmt.Sprintf("apiVersion: example.com/v2\nkind: Widget\nmetadata: {name: w1, namespace: %s}\nspec: {replicas: 3}\n", ns))
	if got := cl.kubectl(t, "get", "widgets.v1.example.com", "w1", "-n", ns, "-o", `jsonpath={.spec.size}/{.metadata.labels.mutated-by}`); got != "3/extension" {
		t.Errorf("widget at v1: %q, want 3/extension", got)
	}
	poll.Eventually(t, 60*time.Second, func() error {
		cm, err := cl.client.CoreV1().ConfigMaps(ns).Get(ctx, "widget-w1", getOpts)
		if err != nil {
			return err
		}
		if cm.Data["size"] != "3" || len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].Name != "w1" {
			return fmt.Errorf("configmap %+v %+v", cm.Data, cm.OwnerReferences)
		}
		return nil
	})
	poll.Eventually(t, 30*time.Second, poll.State("widget ready at v2", func() (bool, string) {
		got := cl.kubectl(t, "get", "widgets.v2.example.com", "w1", "-n", ns, "-o", `jsonpath={.spec.replicas}/{.status.ready}`)
		return got == "3/true", got
	}))
	cl.kubectl(t, "delete", "widget", "w1", "-n", ns)
	poll.Eventually(t, 60*time.Second, func() error {
		_, err := cl.client.CoreV1().ConfigMaps(ns).Get(ctx, "widget-w1", getOpts)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("the Widget's ConfigMap is still there (%v)", err)
	})
}
