package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// TestObjectSemantics covers the metadata rules every client relies on.
func TestObjectSemantics(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	cs := s.client()
	cms := cs.CoreV1().ConfigMaps("default")

	t.Run("bootstrap objects", func(t *testing.T) {
		svc, err := cs.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil || svc.Spec.ClusterIP != "10.43.0.1" || svc.Spec.Ports[0].Port != 443 {
			t.Errorf("kubernetes Service: %+v %v", svc.Spec, err)
		}
		for _, pc := range []string{"system-node-critical", "system-cluster-critical"} {
			if _, err := cs.SchedulingV1().PriorityClasses().Get(ctx, pc, metav1.GetOptions{}); err != nil {
				t.Errorf("PriorityClass %s: %v", pc, err)
			}
		}
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		if err != nil || ns.Labels["kubernetes.io/metadata.name"] != "kube-system" || ns.Spec.Finalizers[0] != "kubernetes" {
			t.Errorf("kube-system: %+v %v", ns, err)
		}
	})

	t.Run("generateName uid creationTimestamp generation", func(t *testing.T) {
		c, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}}, metav1.CreateOptions{})
		if err != nil || !strings.HasPrefix(c.Name, "gen-") || len(c.Name) != 9 || c.UID == "" || c.CreationTimestamp.IsZero() {
			t.Fatalf("generateName: %+v %v", c.ObjectMeta, err)
		}
		pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: "high"}, Value: 1000}
		if _, err := cs.SchedulingV1().PriorityClasses().Create(ctx, pc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		d := deployment("gen")
		d, err = cs.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{})
		if err != nil || d.Generation != 1 {
			t.Fatalf("deployment generation %d, %v", d.Generation, err)
		}
		d.Labels = map[string]string{"only": "metadata"}
		d, _ = cs.AppsV1().Deployments("default").Update(ctx, d, metav1.UpdateOptions{})
		if d.Generation != 1 {
			t.Errorf("metadata change bumped generation to %d", d.Generation)
		}
		d.Spec.Replicas = ptr.To[int32](4)
		d, _ = cs.AppsV1().Deployments("default").Update(ctx, d, metav1.UpdateOptions{})
		if d.Generation != 2 {
			t.Errorf("spec change: generation %d, want 2", d.Generation)
		}
		d.Status.Replicas = 4
		d, _ = cs.AppsV1().Deployments("default").UpdateStatus(ctx, d, metav1.UpdateOptions{})
		if d.Generation != 2 || d.Status.Replicas != 4 {
			t.Errorf("status change: generation %d replicas %d", d.Generation, d.Status.Replicas)
		}
		sc, err := cs.AppsV1().Deployments("default").GetScale(ctx, "gen", metav1.GetOptions{})
		if err != nil || sc.Spec.Replicas != 4 || sc.Status.Selector != "app=gen" {
			t.Errorf("scale: %+v %v", sc, err)
		}
	})

	t.Run("dryRun stores nothing", func(t *testing.T) {
		c, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dry"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil || c.Name != "dry" {
			t.Fatalf("dry-run create: %v", err)
		}
		if _, err := cms.Get(ctx, "dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("dry-run create stored the object: %v", err)
		}
		cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "wet"}}, metav1.CreateOptions{})
		if err := cms.Delete(ctx, "wet", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Fatal(err)
		}
		if _, err := cms.Get(ctx, "wet", metav1.GetOptions{}); err != nil {
			t.Errorf("dry-run delete removed the object: %v", err)
		}
	})

	t.Run("delete preconditions", func(t *testing.T) {
		c, _ := cms.Get(ctx, "wet", metav1.GetOptions{})
		wrong := types.UID("not-the-uid")
		if err := cms.Delete(ctx, "wet", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &wrong}}); !apierrors.IsConflict(err) {
			t.Errorf("uid precondition: want 409, got %v", err)
		}
		if err := cms.Delete(ctx, "wet", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &c.UID, ResourceVersion: &c.ResourceVersion}}); err != nil {
			t.Errorf("matching preconditions: %v", err)
		}
	})

	t.Run("finalizers hold the object", func(t *testing.T) {
		c, _ := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "fin", Finalizers: []string{"example.com/hold"}}}, metav1.CreateOptions{})
		if err := cms.Delete(ctx, "fin", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		c, err := cms.Get(ctx, "fin", metav1.GetOptions{})
		if err != nil || c.DeletionTimestamp == nil {
			t.Fatalf("object with a finalizer: %v %v", c, err)
		}
		c.Finalizers = append(c.Finalizers, "example.com/late")
		if _, err := cms.Update(ctx, c, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
			t.Errorf("adding a finalizer while deleting: want 422, got %v", err)
		}
		c, _ = cms.Get(ctx, "fin", metav1.GetOptions{})
		c.Finalizers = nil
		if _, err := cms.Update(ctx, c, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cms.Get(ctx, "fin", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("object still there after its last finalizer: %v", err)
		}
	})

	t.Run("pod graceful deletion and binding", func(t *testing.T) {
		pods := cs.CoreV1().Pods("default")
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "graceful"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		p, err := pods.Create(ctx, p, metav1.CreateOptions{})
		if err != nil || p.Status.Phase != corev1.PodPending || p.Status.QOSClass != corev1.PodQOSBestEffort || *p.Spec.Priority != 0 {
			t.Fatalf("new pod: %+v %v", p.Status, err)
		}
		if len(p.Spec.Tolerations) != 2 || *p.Spec.Tolerations[0].TolerationSeconds != 300 {
			t.Errorf("default tolerations: %+v", p.Spec.Tolerations)
		}
		b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "graceful"}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-1"}}
		if err := pods.Bind(ctx, b, metav1.CreateOptions{}); err != nil {
			t.Fatalf("bind: %v", err)
		}
		if err := pods.Bind(ctx, b, metav1.CreateOptions{}); !apierrors.IsConflict(err) {
			t.Errorf("second bind: want 409, got %v", err)
		}
		p, _ = pods.Get(ctx, "graceful", metav1.GetOptions{})
		if p.Spec.NodeName != "node-1" || p.Status.Conditions[0].Type != corev1.PodScheduled {
			t.Errorf("after bind: node %q conditions %+v", p.Spec.NodeName, p.Status.Conditions)
		}
		// A pod's generation counts its spec changes: not the binding,
		// not metadata, not a generation the client sends.
		steps := []struct {
			name   string
			update func(*corev1.Pod)
			want   int64
		}{
			{"bound", func(*corev1.Pod) {}, 1},
			{"annotation", func(p *corev1.Pod) { p.Annotations = map[string]string{"a": "b"} }, 1},
			{"client-set generation", func(p *corev1.Pod) { p.Generation = 7 }, 1},
			{"image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "busybox:2" }, 2},
			// Replacing the tolerations keeps the defaults (admitted again,
			// as upstream's DefaultTolerationSeconds does on update).
			{"tolerations", func(p *corev1.Pod) {
				p.Spec.Tolerations = []corev1.Toleration{{Key: "foo", Operator: corev1.TolerationOpEqual, Value: "bar", Effect: corev1.TaintEffectNoSchedule}}
			}, 3},
		}
		for _, st := range steps {
			// Controllers may write the pod meanwhile: update the latest.
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cur, err := pods.Get(ctx, "graceful", metav1.GetOptions{})
				if err != nil {
					return err
				}
				st.update(cur)
				p, err = pods.Update(ctx, cur, metav1.UpdateOptions{})
				return err
			})
			if err != nil || p.Generation != st.want {
				t.Fatalf("generation after %s: %d, want %d (%v)", st.name, p.Generation, st.want, err)
			}
		}
		// As upstream, binding writes the pod without taking ownership of
		// fields: nobody owns spec.nodeName.
		for _, mf := range p.ManagedFields {
			if mf.FieldsV1 != nil && strings.Contains(string(mf.FieldsV1.Raw), "f:nodeName") {
				t.Errorf("binding recorded an owner of spec.nodeName: %+v", mf)
			}
		}
		if err := pods.Delete(ctx, "graceful", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](20)}); err != nil {
			t.Fatal(err)
		}
		p, err = pods.Get(ctx, "graceful", metav1.GetOptions{})
		if err != nil || p.DeletionTimestamp == nil || *p.DeletionGracePeriodSeconds != 20 {
			t.Fatalf("scheduled pod after graceful delete: %v %v", p, err)
		}
		if time.Until(p.DeletionTimestamp.Time) < 15*time.Second {
			t.Errorf("deletionTimestamp %v is not ~20s ahead", p.DeletionTimestamp)
		}
		if p.Generation != 4 {
			t.Errorf("generation after graceful delete: %d, want 4", p.Generation)
		}
		if len(p.Spec.Tolerations) != 3 {
			t.Errorf("tolerations after replacing them: %+v", p.Spec.Tolerations)
		}
		if err := pods.Delete(ctx, "graceful", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			t.Fatal(err)
		}
		if _, err := pods.Get(ctx, "graceful", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("pod after grace 0: %v", err)
		}
	})

	t.Run("service allocation", func(t *testing.T) {
		svcs := cs.CoreV1().Services("default")
		mk := func(name, ip string, typ corev1.ServiceType, nodePort int32) *corev1.Service {
			return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{Type: typ, ClusterIP: ip,
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), NodePort: nodePort}}}}
		}
		a, err := svcs.Create(ctx, mk("wants-ip", "10.43.7.7", "", 0), metav1.CreateOptions{})
		if err != nil || a.Spec.ClusterIP != "10.43.7.7" || a.Spec.ClusterIPs[0] != "10.43.7.7" {
			t.Fatalf("requested clusterIP: %+v %v", a.Spec, err)
		}
		if _, err := svcs.Create(ctx, mk("same-ip", "10.43.7.7", "", 0), metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "already allocated") {
			t.Errorf("duplicate clusterIP: %v", err)
		}
		// Each allocation is an IPAddress object naming its Service, as
		// upstream's allocator records it; the kubernetes Service's too.
		ipas := cs.NetworkingV1().IPAddresses()
		for ip, svc := range map[string]string{"10.43.7.7": "wants-ip", "10.43.0.1": "kubernetes"} {
			rec, err := ipas.Get(ctx, ip, metav1.GetOptions{})
			if err != nil || rec.Spec.ParentRef == nil || *rec.Spec.ParentRef != (networkingv1.ParentReference{Resource: "services", Namespace: "default", Name: svc}) ||
				rec.Labels["ipaddress.kubernetes.io/managed-by"] != "ipallocator.k8s.io" || rec.Labels["ipaddress.kubernetes.io/ip-family"] != "IPv4" {
				t.Errorf("IPAddress %s: %+v %v", ip, rec, err)
			}
		}
		// An address a user's IPAddress holds is not handed to a Service.
		if _, err := ipas.Create(ctx, &networkingv1.IPAddress{ObjectMeta: metav1.ObjectMeta{Name: "10.43.7.8"}, Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{Group: "gateway.networking.k8s.io", Resource: "gateways", Namespace: "default", Name: "gw"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := svcs.Create(ctx, mk("user-ip", "10.43.7.8", "", 0), metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "already allocated") {
			t.Errorf("clusterIP held by a user's IPAddress: %v", err)
		}
		if _, err := svcs.Create(ctx, mk("outside", "192.168.1.1", "", 0), metav1.CreateOptions{}); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "not in the valid range") {
			t.Errorf("clusterIP outside the range: %v", err)
		}
		np, err := svcs.Create(ctx, mk("np", "", corev1.ServiceTypeNodePort, 0), metav1.CreateOptions{})
		if err != nil || np.Spec.Ports[0].NodePort < 30000 || np.Spec.Ports[0].NodePort > 32767 || np.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster {
			t.Fatalf("NodePort service: %+v %v", np.Spec, err)
		}
		if _, err := svcs.Create(ctx, mk("np2", "", corev1.ServiceTypeNodePort, np.Spec.Ports[0].NodePort), metav1.CreateOptions{}); !apierrors.IsInvalid(err) {
			t.Errorf("duplicate nodePort: %v", err)
		}
		// Deleting returns the address to the pool.
		if err := svcs.Delete(ctx, "wants-ip", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := ipas.Get(ctx, "10.43.7.7", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("IPAddress of a deleted Service: %v", err)
		}
		if _, err := svcs.Create(ctx, mk("reuse", "10.43.7.7", "", 0), metav1.CreateOptions{}); err != nil {
			t.Errorf("released clusterIP not reusable: %v", err)
		}
		// A NodePort Service turned ExternalName, its ports sent back as
		// they were, drops its node port and cluster IP (as upstream), and
		// both are free for others.
		port, ip := np.Spec.Ports[0].NodePort, np.Spec.ClusterIP
		np.Spec.Type, np.Spec.ExternalName, np.Spec.ExternalTrafficPolicy = corev1.ServiceTypeExternalName, "example.com", ""
		np, err = svcs.Update(ctx, np, metav1.UpdateOptions{})
		if err != nil || np.Spec.Ports[0].NodePort != 0 || np.Spec.ClusterIP != "" {
			t.Fatalf("NodePort to ExternalName: %+v %v", np.Spec, err)
		}
		if _, err := svcs.Create(ctx, mk("np3", ip, corev1.ServiceTypeNodePort, port), metav1.CreateOptions{}); err != nil {
			t.Errorf("node port %d and IP %s not free after the type change: %v", port, ip, err)
		}
	})

	t.Run("namespace lifecycle admission", func(t *testing.T) {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "nowhere"}}, metav1.CreateOptions{}); err == nil {
			t.Error("create in the default namespace with a mismatching namespace was accepted")
		}
		if _, err := cs.CoreV1().ConfigMaps("nowhere").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("create in a missing namespace: %v", err)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := string(body)
		for _, want := range []string{`apiserver_request_total{code="201",group="",resource="configmaps",subresource="",verb="create",version="v1"}`, `apiserver_request_duration_seconds_bucket{group="",resource="configmaps",subresource="",verb="get",version="v1",le="0.005"}`, "process_resident_memory_bytes"} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

func deployment(name string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}}
}

// TestNewAPIDetails covers what upstream's conformance tests read from the
// groups this round added: the default ServiceCIDR, IPAddress names, and
// the field selectors of CertificateSigningRequests and events.k8s.io.
func TestNewAPIDetails(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	cs := s.client()
	def, err := cs.NetworkingV1().ServiceCIDRs().Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || len(def.Spec.CIDRs) != 1 || def.Spec.CIDRs[0] != "10.43.0.0/16" {
		t.Errorf("default ServiceCIDR: %+v %v", def, err)
	}
	for name, ok := range map[string]bool{"10.99.0.7": true, "fd00::7": true, "not-an-ip": false, "fd00:0::8": false} {
		ip := &networkingv1.IPAddress{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.IPAddressSpec{ParentRef: &networkingv1.ParentReference{Resource: "services", Namespace: "default", Name: "x"}}}
		_, err := cs.NetworkingV1().IPAddresses().Create(ctx, ip, metav1.CreateOptions{})
		if (err == nil) != ok {
			t.Errorf("IPAddress %q: accepted %v, want %v (%v)", name, err == nil, ok, err)
		}
	}
	if _, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{FieldSelector: "spec.signerName=example.com/x"}); err != nil {
		t.Errorf("CSR field selector spec.signerName: %v", err)
	}
	for _, sel := range []string{"spec.signerName=example.com/x", "spec.podName=p", "spec.nodeName=n"} {
		if _, err := cs.CertificatesV1().PodCertificateRequests("default").List(ctx, metav1.ListOptions{FieldSelector: sel}); err != nil {
			t.Errorf("PodCertificateRequest field selector %s: %v", sel, err)
		}
	}
	ev := &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1"}, EventTime: metav1.NowMicro(), ReportingController: "example.com/ctl", ReportingInstance: "i",
		Action: "Test", Reason: "Tested", Type: "Normal", Regarding: corev1.ObjectReference{Kind: "Pod", Name: "p", Namespace: "default"}}
	if _, err := cs.EventsV1().Events("default").Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for sel, want := range map[string]int{"reportingController=example.com/ctl": 1, "reportingController=other": 0, "regarding.name=p,reason=Tested": 1} {
		l, err := cs.EventsV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil || len(l.Items) != want {
			t.Errorf("events.k8s.io field selector %s: %d items, %v", sel, len(l.Items), err)
		}
	}
}
