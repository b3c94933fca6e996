package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// nslookup asks the pod's resolver (busybox's own client, which reads the
// pod's resolv.conf) for name.
func nslookup(ns, pod, name string) (string, error) {
	return cl.skiff("kubectl", "-n", ns, "exec", pod, "--", "nslookup", name)
}

// Pods resolve through the cluster DNS: their resolv.conf names the
// kube-dns ClusterIP with the namespace's search path; a Service, a
// headless Service's endpoints and StatefulSet pods have names; a name
// that does not exist is NXDOMAIN.
func TestClusterDNS(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	createPod(t, webPod(ns, "web-1", "node-"+strings.ReplaceAll(cl.nodeIP, ".", "-")))
	createPod(t, busyboxPod(ns, "client", "while true; do sleep 1; done"))
	web, err := cl.client.CoreV1().Services(ns).Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       v1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []v1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.client.CoreV1().Services(ns).Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, Selector: map[string]string{"app": "db"}, Ports: []v1.ServicePort{{Name: "pg", Port: 5432}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	db := busyboxPod(ns, "", "while true; do sleep 1; done")
	db.Labels = map[string]string{"app": "db"}
	if _, err := cl.client.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](2), ServiceName: "db",
			Selector: &metav1.LabelSelector{MatchLabels: db.Labels},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: db.Labels}, Spec: db.Spec},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunningReady(t, ns, "client")
	waitRunningReady(t, ns, "web-1")
	db0, db1 := waitRunningReady(t, ns, "db-0"), waitRunningReady(t, ns, "db-1")

	resolv := cl.kubectl(t, "-n", ns, "exec", "client", "--", "cat", "/etc/resolv.conf")
	for _, want := range []string{"nameserver 10.43.0.10", "search " + ns + ".svc.cluster.local svc.cluster.local cluster.local", "ndots:5"} {
		if !strings.Contains(resolv, want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
	if out := cl.kubectl(t, "-n", "kube-system", "get", "service", "kube-dns"); !strings.Contains(out, "10.43.0.10") || !strings.Contains(out, "53/UDP,53/TCP") {
		t.Errorf("kube-dns Service:\n%s", out)
	}

	lookup := func(name string, want ...string) {
		t.Helper()
		poll.Eventually(t, 20*time.Second, func() error {
			out, err := nslookup(ns, "client", name)
			if err != nil {
				return fmt.Errorf("nslookup %s: %v\n%s", name, err, out)
			}
			for _, w := range want {
				if !strings.Contains(out, "Address: "+w) {
					return fmt.Errorf("nslookup %s lacks %s:\n%s", name, w, out)
				}
			}
			return nil
		})
	}
	lookup("web."+ns+".svc.cluster.local", web.Spec.ClusterIP)
	lookup("db."+ns+".svc.cluster.local", db0.Status.PodIP, db1.Status.PodIP)
	lookup("db-1.db."+ns+".svc.cluster.local", db1.Status.PodIP)
	lookup("kubernetes.default.svc.cluster.local", "10.43.0.1")

	out, err := nslookup(ns, "client", "missing."+ns+".svc.cluster.local")
	if err == nil || !strings.Contains(out, "NXDOMAIN") {
		t.Errorf("missing name: err %v\n%s", err, out)
	}

	// The same names from a pod's own view of itself: /etc/hosts carries
	// the StatefulSet pod's fully qualified name.
	hosts := cl.kubectl(t, "-n", ns, "exec", "db-0", "--", "cat", "/etc/hosts")
	if !strings.Contains(hosts, db0.Status.PodIP+"\tdb-0.db."+ns+".svc.cluster.local\tdb-0") {
		t.Errorf("db-0's /etc/hosts:\n%s", hosts)
	}
}
