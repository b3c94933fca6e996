package authz

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-sh/skiff/internal/auth"
)

func alice(groups ...string) auth.User {
	return auth.User{Name: "alice", Groups: append(groups, Authenticated)}
}

func res(u auth.User, verb, group, resource, sub, ns, name string) Attributes {
	return Attributes{User: u, Verb: verb, IsResource: true, APIGroup: group, Resource: resource, Subresource: sub, Namespace: ns, Name: name}
}

func policy() *RBAC {
	p := NewRBAC()
	for _, c := range ClusterRoles() {
		p.SetClusterRole(&c)
	}
	for _, b := range ClusterRoleBindings() {
		p.SetClusterRoleBinding(&b)
	}
	p.SetRole(&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "pod-reader"}, Rules: []rbacv1.PolicyRule{r(v("get"), core, "pods")}})
	p.SetRoleBinding(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "alice-reads"},
		RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "pod-reader"}, Subjects: []rbacv1.Subject{user("alice")}})
	p.SetClusterRole(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "one-secret"}, Rules: []rbacv1.PolicyRule{named(r(v("get", "update"), core, "secrets"), "s1")}})
	p.SetRoleBinding(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "team-secret"},
		RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "one-secret"}, Subjects: []rbacv1.Subject{group("team")}})
	p.SetClusterRole(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "scaler"}, Rules: []rbacv1.PolicyRule{r(v("get", "patch"), g("apps"), "*/scale"), r(v("get"), core, "pods/log")}})
	p.SetClusterRoleBinding(&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "bob-scales"},
		RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "scaler"}, Subjects: []rbacv1.Subject{user("bob")}})
	p.SetRoleBinding(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "c", Name: "viewers"},
		RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"}, Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "c", Name: "robot"}}})
	p.SetClusterRole(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "view"}, Rules: defaultRole("system:aggregate-to-view").Rules}) // as aggregation makes it
	p.SetRoleBinding(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "d", Name: "dangling"},
		RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "gone"}, Subjects: []rbacv1.Subject{user("alice")}})
	return p
}

// TestRBAC reads as RBAC's rules: each row a request and whether the
// default policy plus a few bindings allow it.
func TestRBAC(t *testing.T) {
	p := policy()
	bob := auth.User{Name: "bob", Groups: []string{Authenticated}}
	robot := auth.User{Name: "system:serviceaccount:c:robot", Groups: []string{ServiceAccountsGroup, Authenticated}}
	anon := auth.User{Name: Anonymous, Groups: []string{Unauthenticated}}
	cases := []struct {
		name string
		a    Attributes
		want bool
	}{
		{"a Role allows get pods in its namespace", res(alice(), "get", "", "pods", "", "a", "web"), true},
		{"...but not list", res(alice(), "list", "", "pods", "", "a", ""), false},
		{"...nor in another namespace", res(alice(), "get", "", "pods", "", "b", "web"), false},
		{"...nor a subresource", res(alice(), "get", "", "pods", "log", "a", "web"), false},
		{"a group's ClusterRole bound in one namespace, its resourceName", res(alice("team"), "get", "", "secrets", "", "b", "s1"), true},
		{"...another name", res(alice("team"), "get", "", "secrets", "", "b", "s2"), false},
		{"...list has no name", res(alice("team"), "list", "", "secrets", "", "b", ""), false},
		{"...not in another namespace", res(alice("team"), "get", "", "secrets", "", "a", "s1"), false},
		{"*/scale matches deployments/scale", res(bob, "patch", "apps", "deployments", "scale", "x", "d"), true},
		{"*/scale does not match deployments", res(bob, "patch", "apps", "deployments", "", "x", "d"), false},
		{"pods/log exactly", res(bob, "get", "", "pods", "log", "x", "p"), true},
		{"pods/log is not pods/exec", res(bob, "get", "", "pods", "exec", "x", "p"), false},
		{"a service account bound to view reads pods", res(robot, "list", "", "pods", "", "c", ""), true},
		{"...but not secrets", res(robot, "get", "", "secrets", "", "c", "s"), false},
		{"authenticated users discover", Attributes{User: alice(), Verb: "get", Path: "/apis/apps/v1"}, true},
		{"...and read openapi", Attributes{User: alice(), Verb: "get", Path: "/openapi/v3"}, true},
		{"...but not metrics", Attributes{User: alice(), Verb: "get", Path: "/metrics"}, false},
		{"anonymous reads /healthz", Attributes{User: anon, Verb: "get", Path: "/healthz"}, true},
		{"...but not /api", Attributes{User: anon, Verb: "get", Path: "/api"}, false},
		{"anyone may ask what they may do", res(bob, "create", "authorization.k8s.io", "selfsubjectaccessreviews", "", "", ""), true},
		{"the scheduler binds pods", res(auth.User{Name: SchedulerUser}, "create", "", "pods", "binding", "x", "p"), true},
		{"the scheduler does not read secrets", res(auth.User{Name: SchedulerUser}, "get", "", "secrets", "", "x", "s"), false},
		{"the scheduler renews its own lease only", res(auth.User{Name: SchedulerUser}, "update", "coordination.k8s.io", "leases", "", "kube-system", "kube-controller-manager"), false},
	}
	for _, c := range cases {
		d, _ := p.Authorize(c.a)
		if (d == Allow) != c.want {
			t.Errorf("%s: %v, want allowed=%v", c.name, d, c.want)
		}
	}
	if _, reason := p.Authorize(res(alice(), "list", "", "pods", "", "d", "")); !strings.Contains(reason, `role.rbac.authorization.k8s.io "gone" not found`) {
		t.Errorf("a binding to a missing role: reason %q", reason)
	}
	// Deleting the binding takes the permission away.
	p.DeleteRoleBinding("a", "alice-reads")
	if d, _ := p.Authorize(res(alice(), "get", "", "pods", "", "a", "web")); d == Allow {
		t.Error("the deleted RoleBinding still grants")
	}
}

// TestUnionAndForbidden: system:masters always passes; a denial reads as
// upstream's.
func TestUnionAndForbidden(t *testing.T) {
	u := Union{NewNode(NodeRules()), policy()}
	admin := auth.User{Name: "system:admin", Groups: []string{Masters, Authenticated}}
	if d, _ := u.Authorize(res(admin, "delete", "", "nodes", "", "", "n1")); d != Allow {
		t.Error("system:masters was refused")
	}
	a := res(alice(), "list", "", "pods", "", "b", "")
	d, reason := u.Authorize(a)
	if d == Allow {
		t.Fatal("alice may list pods in b")
	}
	if got, want := Forbidden(a, reason).Error(), `pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "b"`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	cs := res(alice(), "get", "apps", "deployments", "scale", "", "d")
	if got, want := Forbidden(cs, "").Error(), `deployments.apps "d" is forbidden: User "alice" cannot get resource "deployments/scale" in API group "apps" at the cluster scope`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	path := Attributes{User: alice(), Verb: "get", Path: "/metrics"}
	if got, want := Forbidden(path, "").Error(), `forbidden: User "alice" cannot get path "/metrics"`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

// TestNodeAuthorizer: a node reads only what its own pods use and changes
// only its own Node and Lease.
func TestNodeAuthorizer(t *testing.T) {
	n := NewNode(NodeRules())
	n1 := auth.User{Name: "system:node:n1", Groups: []string{NodesGroup, Authenticated}}
	n.SetPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p"}, Spec: corev1.PodSpec{NodeName: "n1", ServiceAccountName: "app",
		Volumes: []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls"}}},
			{Name: "d", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
		Containers: []corev1.Container{{Name: "c", EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}}}}})
	n.SetPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "q"}, Spec: corev1.PodSpec{NodeName: "n2",
		Volumes: []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "other"}}}}}})
	n.SetClaim(&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-1"}})
	cases := []struct {
		name string
		a    Attributes
		want bool
	}{
		{"its pod's secret", res(n1, "get", "", "secrets", "", "a", "tls"), true},
		{"another node's pod's secret", res(n1, "get", "", "secrets", "", "a", "other"), false},
		{"list secrets", res(n1, "list", "", "secrets", "", "a", ""), false},
		{"its pod's configmap", res(n1, "get", "", "configmaps", "", "a", "cfg"), true},
		{"its pod's claim", res(n1, "get", "", "persistentvolumeclaims", "", "a", "data"), true},
		{"its pod's claim's volume", res(n1, "get", "", "persistentvolumes", "", "", "pv-1"), true},
		{"another volume", res(n1, "get", "", "persistentvolumes", "", "", "pv-2"), false},
		{"a token for its pod's service account", res(n1, "create", "", "serviceaccounts", "token", "a", "app"), true},
		{"a token for another", res(n1, "create", "", "serviceaccounts", "token", "a", "default"), false},
		{"its pod's service account", res(n1, "get", "", "serviceaccounts", "", "a", "app"), true},
		{"list service accounts", res(n1, "list", "", "serviceaccounts", "", "a", ""), false},
		{"its own node's status", res(n1, "patch", "", "nodes", "status", "", "n1"), true},
		{"another node", res(n1, "patch", "", "nodes", "", "", "n2"), false},
		{"another node's status", res(n1, "update", "", "nodes", "status", "", "n2"), false},
		{"its own lease", res(n1, "update", "coordination.k8s.io", "leases", "", "kube-node-lease", "n1"), true},
		{"another lease", res(n1, "update", "coordination.k8s.io", "leases", "", "kube-node-lease", "n2"), false},
		{"pods to run", res(n1, "list", "", "pods", "", "", ""), true},
		{"delete its own pod", res(n1, "delete", "", "pods", "", "a", "p"), true},
		{"delete another node's pod", res(n1, "delete", "", "pods", "", "a", "q"), false},
		{"evict another node's pod", res(n1, "create", "", "pods", "eviction", "a", "q"), false},
		{"delete a namespace", res(n1, "delete", "", "namespaces", "", "", "a"), false},
		{"endpoint slices for the proxy", res(n1, "watch", "discovery.k8s.io", "endpointslices", "", "", ""), true},
	}
	for _, c := range cases {
		if d, _ := n.Authorize(c.a); (d == Allow) != c.want {
			t.Errorf("%s: %v, want allowed=%v", c.name, d, c.want)
		}
	}
	// The pod moves away: its secret goes with it.
	n.DeletePod("a", "p")
	if d, reason := n.Authorize(res(n1, "get", "", "secrets", "", "a", "tls")); d == Allow || !strings.Contains(reason, "no relationship found between node 'n1'") {
		t.Errorf("after the pod left: %v %q", d, reason)
	}
	if d, _ := n.Authorize(res(alice(), "get", "", "secrets", "", "a", "tls")); d != NoOpinion {
		t.Error("the Node authorizer decided a user's request")
	}
}

// TestCovers: escalation prevention's rule arithmetic.
func TestCovers(t *testing.T) {
	owner := []rbacv1.PolicyRule{r(v("get", "list"), core, "pods"), named(r(v("get"), core, "secrets"), "s1"), r(v("*"), g("apps"), "*"), urls(v("get"), "/healthz/*")}
	cases := []struct {
		name string
		req  rbacv1.PolicyRule
		want bool
	}{
		{"the same", r(v("get"), core, "pods"), true},
		{"more verbs", r(v("get", "delete"), core, "pods"), false},
		{"a subresource", r(v("get"), core, "pods/log"), false},
		{"a held name", named(r(v("get"), core, "secrets"), "s1"), true},
		{"all secrets", r(v("get"), core, "secrets"), false},
		{"anything in apps", r(v("delete", "create"), g("apps"), "deployments", "deployments/scale"), true},
		{"a wildcard verb not held literally", r(v("*"), core, "pods"), false},
		{"a path under a held prefix", urls(v("get"), "/healthz/etcd"), true},
		{"another path", urls(v("get"), "/metrics"), false},
	}
	for _, c := range cases {
		if ok, _ := Covers(owner, []rbacv1.PolicyRule{c.req}); ok != c.want {
			t.Errorf("%s: %v, want %v", c.name, ok, c.want)
		}
	}
	_, missing := Covers(owner, []rbacv1.PolicyRule{r(v("create"), core, "pods")})
	err := EscalationError(alice(), missing)
	if want := "user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"create\"]}"; err.Error() != want {
		t.Errorf("escalation message:\n%s\nwant\n%s", err, want)
	}
}

// TestReconcile: defaults come back, user additions stay, autoupdate
// "false" is left alone.
func TestReconcile(t *testing.T) {
	want := clusterRole("viewer", nil, r(read, core, "pods"))
	if got := ReconcileClusterRole(nil, want); got == nil || got.Name != "viewer" {
		t.Fatal("a missing default role is not created")
	}
	stored := want.DeepCopy()
	stored.Rules = []rbacv1.PolicyRule{r(v("get"), core, "pods"), r(v("get"), core, "nodes")}
	got := ReconcileClusterRole(stored, want)
	if got == nil || len(got.Rules) != 3 {
		t.Fatalf("reconciled rules %v", got)
	}
	if ReconcileClusterRole(got, want) != nil {
		t.Error("a reconciled role is written again")
	}
	stored.Annotations[AutoUpdate] = "false"
	if ReconcileClusterRole(stored, want) != nil {
		t.Error("autoupdate=false was overwritten")
	}
	b := crb("x", "viewer", group("g"))
	sb := b.DeepCopy()
	sb.Subjects = []rbacv1.Subject{user("extra")}
	nb, recreate := ReconcileClusterRoleBinding(sb, b)
	if nb == nil || recreate || len(nb.Subjects) != 2 {
		t.Errorf("binding: %v %v", nb, recreate)
	}
	sb.RoleRef.Name = "other"
	if _, recreate := ReconcileClusterRoleBinding(sb, b); !recreate {
		t.Error("a changed roleRef is not recreated")
	}
}

// BenchmarkRBACDecision: one decision with 5,000 RoleBindings and 1,000
// ClusterRoleBindings in place (the target: within 20 µs).
func BenchmarkRBACDecision(b *testing.B) {
	p := policy()
	for i := range 1000 {
		p.SetClusterRoleBinding(&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("crb-%d", i)},
			RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"}, Subjects: []rbacv1.Subject{user(fmt.Sprintf("user-%d", i)), group(fmt.Sprintf("group-%d", i%50))}})
	}
	for i := range 5000 {
		ns := fmt.Sprintf("ns-%d", i%100)
		p.SetRoleBinding(&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("rb-%d", i)},
			RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "edit"}, Subjects: []rbacv1.Subject{user(fmt.Sprintf("user-%d", i)), group(fmt.Sprintf("group-%d", i%50))}})
	}
	p.SetClusterRole(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "edit"}, Rules: defaultRole("system:aggregate-to-edit").Rules})
	u := auth.User{Name: "user-4321", Groups: []string{"group-21", Authenticated}}
	a := res(u, "create", "apps", "deployments", "", "ns-21", "")
	if d, _ := p.Authorize(a); d != Allow {
		b.Fatal("the benchmark's request is not allowed")
	}
	b.ReportAllocs()
	for b.Loop() {
		p.Authorize(a)
	}
}

func defaultRole(name string) rbacv1.ClusterRole {
	for _, c := range ClusterRoles() {
		if c.Name == name {
			return c
		}
	}
	panic("no default role " + name)
}
