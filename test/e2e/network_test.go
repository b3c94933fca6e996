package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiff-sh/skiff/test/poll"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

// clientHost makes a machine outside the cluster: a namespace joined to
// the first node by its own veth pair (cli0 10.78.0.1 on the node, cli0p
// 10.78.0.2 here), routing everything through the node. Cleanup deletes
// it, which takes both ends of the pair.
func clientHost(t *testing.T) string {
	t.Helper()
	netns := cl.netns + "-cli"
	for _, args := range [][]string{
		{"netns", "add", netns},
		{"-n", netns, "link", "set", "lo", "up"},
		{"-n", cl.netns, "link", "add", "cli0", "type", "veth", "peer", "name", "cli0p"},
		{"-n", cl.netns, "link", "set", "cli0p", "netns", netns},
		{"-n", cl.netns, "addr", "add", "10.78.0.1/24", "dev", "cli0"},
		{"-n", cl.netns, "link", "set", "cli0", "up"},
		{"-n", netns, "addr", "add", "10.78.0.2/24", "dev", "cli0p"},
		{"-n", netns, "link", "set", "cli0p", "up"},
		{"-n", netns, "route", "add", "default", "via", "10.78.0.1"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			_ = exec.Command("ip", "netns", "del", netns).Run()
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", netns).Run() })
	return netns
}

// httpGet fetches http://addr/ from inside netns.
func httpGet(netns, addr string) (string, error) { return httpGetPath(netns, addr, "/") }

// clientAddr reads the address /cgi-bin/ip reports (busybox's httpd
// writes IPv4 clients as "[::ffff:a.b.c.d]").
func clientAddr(netns, addr string) (string, error) {
	out, err := httpGetPath(netns, addr, "/cgi-bin/ip")
	out = strings.TrimSuffix(strings.TrimPrefix(out, "[::ffff:"), "]")
	return out, err
}

// httpGetPath fetches http://addr+path from inside netns.
func httpGetPath(netns, addr, path string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext:       func(ctx context.Context, n, a string) (net.Conn, error) { return dialIn(ctx, netns, n, a) },
	}}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// webPod serves its own name over HTTP on 8080, Ready once it does.
func webPod(ns, name, node string) *v1.Pod {
	// /cgi-bin/ip answers the client address the pod sees.
	p := busyboxPod(ns, name, `mkdir -p /www/cgi-bin && hostname > /www/index.html && `+
		`printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && `+
		`exec httpd -f -p 8080 -h /www`)
	p.Labels = map[string]string{"app": "web"}
	p.Spec.NodeSelector = map[string]string{v1.LabelHostname: node}
	p.Spec.Containers[0].Ports = []v1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: v1.ProtocolTCP}}
	p.Spec.Containers[0].ReadinessProbe = &v1.Probe{
		ProbeHandler:  v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
	return p
}

// fetchFromPod runs wget in a pod; busybox's own -T is broken here
// (RUNTIME-NOTES), so timeout bounds it.
func fetchFromPod(ns, pod, url string) (string, error) {
	out, err := cl.skiff("kubectl", "-n", ns, "exec", pod, "--", "timeout", "3", "wget", "-qO-", url)
	return strings.TrimSpace(out), err
}

// collect calls get until it has seen every wanted answer.
func collect(t *testing.T, what string, want []string, get func() (string, error)) {
	t.Helper()
	seen := map[string]int{}
	var errs []string
	for i := 0; i < 40 && len(seen) < len(want); i++ {
		out, err := get()
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		seen[out]++
	}
	var got []string
	for k := range seen {
		got = append(got, k)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s: answers %v, want each of %v (errors: %v)", what, seen, want, errs)
	}
}

// Two nodes, each its own network namespace, and a client machine outside
// the cluster: pods reach each other across nodes, a ClusterIP balances
// over pods on both nodes (a pod reaching itself too), NodePort and
// LoadBalancer Services answer the client, endpoints follow a pod's
// deletion, and a Service with nothing behind it refuses at once.
func TestServiceNetworkAcrossNodes(t *testing.T) {
	const ip2 = "10.77.0.2"
	ns2, dir := secondHost(t, "net", ip2)
	t.Cleanup(func() {
		_ = cl.client.CoreV1().Nodes().Delete(context.Background(), "node-net", metav1.DeleteOptions{})
	})
	startAgent(t, ns2, dir, "--node-name", "node-net", "--node-ip", ip2)
	client := clientHost(t)
	ctx := context.Background()
	first := "node-" + strings.ReplaceAll(cl.nodeIP, ".", "-")

	poll.Eventually(t, 60*time.Second, func() error {
		n, err := cl.client.CoreV1().Nodes().Get(ctx, "node-net", getOpts)
		if err != nil || !nodeReady(n) || n.Spec.PodCIDR == "" {
			return fmt.Errorf("node-net not Ready with a pod CIDR: %v", err)
		}
		return nil
	})
	if out, err := cl.skiff("images", "import", "--data-dir", dir, filepath.Join(filepath.Dir(cl.dataDir), "busybox.tar")); err != nil {
		t.Fatalf("import into node-net: %v %s", err, out)
	}

	ns := namespace(t)
	// Two replicas, one per node (required anti-affinity on the host).
	tmpl := webPod(ns, "", first)
	tmpl.Spec.NodeSelector = nil
	tmpl.Spec.Affinity = &v1.Affinity{PodAntiAffinity: &v1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []v1.PodAffinityTerm{{
		LabelSelector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, TopologyKey: v1.LabelHostname,
	}}}}
	if _, err := cl.client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels}, Spec: tmpl.Spec}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := busyboxPod(ns, "client", "while true; do sleep 1; done")
	c.Spec.NodeSelector = map[string]string{v1.LabelHostname: first}
	createPod(t, c)
	waitRunningReady(t, ns, "client")
	var web1, web2 *v1.Pod // on the first node, on node-net
	poll.Eventually(t, 90*time.Second, func() error {
		pods, err := cl.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return err
		}
		web1, web2 = nil, nil
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Status.Phase != v1.PodRunning || !podReady(p) || p.DeletionTimestamp != nil {
				continue
			}
			switch p.Spec.NodeName {
			case first:
				web1 = p
			case "node-net":
				web2 = p
			}
		}
		if web1 == nil || web2 == nil {
			return fmt.Errorf("want a ready web pod on each node, have %d pods", len(pods.Items))
		}
		return nil
	})

	// Pod to pod across nodes, both ways, over the host-gw routes.
	if out, err := fetchFromPod(ns, "client", "http://"+web2.Status.PodIP+":8080/"); err != nil || out != web2.Name {
		t.Errorf("client (node 1) to %s (node 2): %q %v", web2.Name, out, err)
	}
	if out, err := fetchFromPod(ns, web2.Name, "http://"+web1.Status.PodIP+":8080/"); err != nil || out != web1.Name {
		t.Errorf("%s (node 2) to %s (node 1): %q %v", web2.Name, web1.Name, out, err)
	}

	svc := func(name string, typ v1.ServiceType, port int32) *v1.Service {
		s, err := cl.client.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1.ServiceSpec{Type: typ, Selector: map[string]string{"app": "web"},
				Ports: []v1.ServicePort{{Port: port, TargetPort: intstr.FromInt32(8080)}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create service %s: %v", name, err)
		}
		return s
	}
	web := svc("web", v1.ServiceTypeClusterIP, 80)
	np := svc("web-np", v1.ServiceTypeNodePort, 81)
	lb := svc("web-lb", v1.ServiceTypeLoadBalancer, 82)

	both := []string{web1.Name, web2.Name}
	sort.Strings(both)
	collect(t, "ClusterIP from a pod", both, func() (string, error) { return fetchFromPod(ns, "client", "http://"+web.Spec.ClusterIP+"/") })
	// Hairpin: a pod reaching its own Service lands on itself sometimes.
	poll.Eventually(t, 30*time.Second, func() error {
		if out, err := fetchFromPod(ns, web1.Name, "http://"+web.Spec.ClusterIP+"/"); err != nil || out != web1.Name {
			return fmt.Errorf("%s through its Service: %q %v", web1.Name, out, err)
		}
		return nil
	})
	// The second node answers DNS for its own pods (its own server, its
	// endpoint of kube-dns): the Service's name, and a headless Service's
	// name giving the pods on both nodes.
	if _, err := cl.client.CoreV1().Services(ns).Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web-headless"},
		Spec:       v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, Selector: map[string]string{"app": "web"}, Ports: []v1.ServicePort{{Name: "http", Port: 8080}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 20*time.Second, func() error {
		out, err := nslookup(ns, web2.Name, "web."+ns+".svc.cluster.local")
		if err != nil || !strings.Contains(out, "Address: "+web.Spec.ClusterIP) {
			return fmt.Errorf("DNS on node-net: %v\n%s", err, out)
		}
		out, err = nslookup(ns, web2.Name, "web-headless."+ns+".svc.cluster.local")
		if err != nil || !strings.Contains(out, "Address: "+web1.Status.PodIP) || !strings.Contains(out, "Address: "+web2.Status.PodIP) {
			return fmt.Errorf("headless DNS on node-net: %v\n%s", err, out)
		}
		return nil
	})
	nodePort := fmt.Sprint(np.Spec.Ports[0].NodePort)
	collect(t, "NodePort from outside the cluster", both, func() (string, error) { return httpGet(client, cl.nodeIP+":"+nodePort) })

	// externalTrafficPolicy: Cluster masquerades the client; Local keeps
	// its address and serves only from this node's pods.
	if out, err := clientAddr(client, cl.nodeIP+":"+nodePort); err != nil || out == "10.78.0.2" || net.ParseIP(out) == nil {
		t.Errorf("NodePort (Cluster policy) saw the client as %q (%v), want a masqueraded address", out, err)
	}
	local := svc("web-local", v1.ServiceTypeNodePort, 83)
	local.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	local, err := cl.client.CoreV1().Services(ns).Update(ctx, local, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	localPort := fmt.Sprint(local.Spec.Ports[0].NodePort)
	poll.Eventually(t, 30*time.Second, func() error {
		for i := 0; i < 8; i++ {
			if out, err := httpGet(client, cl.nodeIP+":"+localPort); err != nil || out != web1.Name {
				return fmt.Errorf("NodePort (Local policy) on the first node: %q %v, want only %s", out, err, web1.Name)
			}
		}
		if out, err := clientAddr(client, cl.nodeIP+":"+localPort); err != nil || out != "10.78.0.2" {
			return fmt.Errorf("NodePort (Local policy) saw the client as %q (%v), want 10.78.0.2", out, err)
		}
		return nil
	})

	poll.Eventually(t, 30*time.Second, func() error {
		s, err := cl.client.CoreV1().Services(ns).Get(ctx, "web-lb", getOpts)
		if err != nil {
			return err
		}
		var ips []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			ips = append(ips, in.IP)
		}
		if strings.Join(ips, ",") != cl.nodeIP+","+ip2 {
			return fmt.Errorf("load balancer ingress %v, want both node addresses", ips)
		}
		return nil
	})
	if out := cl.kubectl(t, "-n", ns, "get", "service", "web-lb"); !strings.Contains(out, cl.nodeIP+","+ip2) {
		t.Errorf("kubectl get service shows no external IPs:\n%s", out)
	}
	collect(t, "LoadBalancer from outside the cluster", both, func() (string, error) { return httpGet(client, cl.nodeIP+":82") })
	_ = lb

	// Scaled down to one: the Service's rules follow its endpoints.
	scale := func(n int32) {
		t.Helper()
		sc, err := cl.client.AppsV1().Deployments(ns).GetScale(ctx, "web", getOpts)
		if err != nil {
			t.Fatal(err)
		}
		sc.Spec.Replicas = n
		if _, err := cl.client.AppsV1().Deployments(ns).UpdateScale(ctx, "web", sc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	scaled := time.Now()
	scale(1)
	var survivor string
	poll.Eventually(t, 30*time.Second, func() error {
		answers := map[string]bool{}
		for i := 0; i < 16; i++ {
			out, err := httpGet(client, cl.nodeIP+":"+nodePort)
			if err != nil {
				return fmt.Errorf("after scaling to one: %v", err)
			}
			answers[out] = true
		}
		if len(answers) != 1 {
			return fmt.Errorf("after scaling to one, answers from %v", answers)
		}
		for a := range answers {
			survivor = a
		}
		return nil
	})
	t.Logf("only %s answered %v after the scale-down", survivor, time.Since(scaled).Round(10*time.Millisecond))

	// Nothing behind the Service (the last pod gone, not merely
	// terminating: a serving terminating pod still gets traffic, as
	// upstream): refused by the rules at once, not left to time out.
	scale(0)
	poll.Eventually(t, 60*time.Second, func() error {
		slices, err := cl.client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=web-np"})
		if err != nil {
			return err
		}
		for _, sl := range slices.Items {
			if len(sl.Endpoints) > 0 {
				return fmt.Errorf("web-np still has endpoints %v", sl.Endpoints)
			}
		}
		return nil
	})
	poll.Eventually(t, 10*time.Second, func() error {
		start := time.Now()
		_, err := httpGet(client, cl.nodeIP+":"+nodePort)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("NodePort without endpoints: %v, want connection refused", err)
		}
		if d := time.Since(start); d > time.Second {
			return fmt.Errorf("refusal took %v", d)
		}
		return nil
	})
	poll.Eventually(t, 10*time.Second, func() error {
		if out, err := fetchFromPod(ns, "client", "http://"+web.Spec.ClusterIP+"/"); err == nil || !strings.Contains(out, "refused") {
			return fmt.Errorf("ClusterIP without endpoints from a pod: %q %v, want connection refused", out, err)
		}
		return nil
	})
}

// A pod's hostPort answers on its node's address, for a client outside
// the cluster (the CNI portmap plugin), and goes with the pod.
func TestHostPort(t *testing.T) {
	client := clientHost(t)
	ns := namespace(t)
	p := webPod(ns, "hp", "node-"+hyphenated(cl.nodeIP))
	p.Spec.Containers[0].Ports[0].HostPort = 8088
	createPod(t, p)
	waitRunningReady(t, ns, "hp")
	poll.Eventually(t, 20*time.Second, func() error {
		if out, err := httpGet(client, cl.nodeIP+":8088"); err != nil || out != "hp" {
			return fmt.Errorf("hostPort 8088: %q %v", out, err)
		}
		return nil
	})
	if err := cl.client.CoreV1().Pods(ns).Delete(context.Background(), "hp", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll.Eventually(t, 60*time.Second, func() error {
		if _, err := httpGet(client, cl.nodeIP+":8088"); err == nil {
			return fmt.Errorf("hostPort 8088 still answers after the pod's deletion")
		}
		return nil
	})
}

// TestProxySubresources reaches a pod's web server through the API
// server's pods/proxy and services/proxy (by port name and by number, any
// method, query and trailing slash kept) and the kubelet through
// nodes/proxy, with kubectl's own raw requests.
func TestProxySubresources(t *testing.T) {
	ns := namespace(t)
	createPod(t, webPod(ns, "px", "node-"+hyphenated(cl.nodeIP)))
	p := waitRunningReady(t, ns, "px")
	// The status says which generation of the spec it reflects.
	if p.Generation != 1 || p.Status.ObservedGeneration != 1 {
		t.Errorf("generation %d, observedGeneration %d: want 1 and 1", p.Generation, p.Status.ObservedGeneration)
	}
	for _, c := range p.Status.Conditions {
		if c.ObservedGeneration != 1 {
			t.Errorf("condition %s: observedGeneration %d", c.Type, c.ObservedGeneration)
		}
	}
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "px"}, Spec: v1.ServiceSpec{Selector: map[string]string{"app": "web"},
		Ports: []v1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromString("http")}}}}
	if _, err := cl.client.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	raw := func(path string) (string, error) {
		out, err := cl.skiff("kubectl", "get", "--raw", path)
		return strings.TrimSpace(out), err
	}
	base := "/api/v1/namespaces/" + ns
	for _, path := range []string{
		base + "/pods/px/proxy/",                // first container port
		base + "/pods/px:8080/proxy/index.html", // explicit port
		base + "/pods/http:px:8080/proxy/",      // explicit scheme
		base + "/services/px:web/proxy/",        // port by name
		base + "/services/px:80/proxy/?x=1",     // port by number, query kept
		base + "/services/http:px:web/proxy/",   // scheme and port name
	} {
		poll.Eventually(t, 20*time.Second, func() error {
			if out, err := raw(path); err != nil || out != "px" {
				return fmt.Errorf("GET %s: %q %v", path, out, err)
			}
			return nil
		})
	}
	// The pod sees the request come from the node (busybox prints the
	// address as [::ffff:10.42.0.1]).
	if out, err := raw(base + "/pods/px:8080/proxy/cgi-bin/ip"); err != nil || !strings.Contains(out, "10.42.0.1]") {
		t.Errorf("cgi through pods/proxy: %q %v", out, err)
	}
	if out, err := raw(base + "/services/px:81/proxy/"); err == nil || !strings.Contains(out, "no service port 81") {
		t.Errorf("unknown service port: %q %v", out, err)
	}
	if _, err := raw(base + "/pods/ftp:px:8080/proxy/"); err == nil {
		t.Errorf("an unknown scheme was proxied")
	}
	// The bare .../proxy moves (301) to .../proxy/, the query kept.
	cfg, err := clientcmd.BuildConfigFromFlags("", cl.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Dial = cl.dialInNetns
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(method, cfg.Host+base+"/pods/px/proxy?method="+method, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != base+"/pods/px/proxy/?method="+method {
			t.Errorf("%s bare pods proxy: %d to %q", method, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	node := "node-" + hyphenated(cl.nodeIP)
	if out, err := raw("/api/v1/nodes/" + node + "/proxy/healthz"); err != nil || out != "ok" {
		t.Errorf("nodes/proxy/healthz: %q %v", out, err)
	}
}
