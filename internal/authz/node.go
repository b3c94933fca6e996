package authz

import (
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/skiff-sh/skiff/internal/auth"
)

// NodesGroup is the group of every node agent's identity,
// system:node:<name>.
const NodesGroup = "system:nodes"

// NodeUserPrefix starts a node agent's user name.
const NodeUserPrefix = "system:node:"

// The cluster DNS Service's namespace, and the prefix of the EndpointSlice
// each node's DNS server publishes there (followed by the node's name).
const (
	DNSNamespace   = "kube-system"
	DNSSlicePrefix = "kube-dns-"
)

// NodeOf is the node name of a node agent's user, if it is one.
func NodeOf(u auth.User) (string, bool) { return nodeName(Attributes{User: u}) }

// Node is the Node authorizer: a node agent may read the Secrets,
// ConfigMaps, PersistentVolumeClaims, PersistentVolumes and ServiceAccounts
// of pods bound to it and ask tokens for those ServiceAccounts, and may change only its own
// Node and Lease; everything else it may do is the node rules (upstream's
// system:node role, which the authorizer applies itself rather than
// through a binding). The graph of what each node's pods use is kept from
// the pods and claims the API server stores.
type Node struct {
	rules []rbacv1.PolicyRule

	mu sync.RWMutex
	// pods: namespace/name → the node it is bound to and what it uses.
	pods map[string]*podRefs
	// uses: node → "kind/namespace/name" → how many of its pods use it.
	uses map[string]map[string]int
	// claimVolume: namespace/claim → the PersistentVolume it is bound to.
	claimVolume map[string]string
}

type podRefs struct {
	node string
	refs []string
}

// NewNode returns a Node authorizer applying rules to every node.
func NewNode(rules []rbacv1.PolicyRule) *Node {
	return &Node{rules: rules, pods: map[string]*podRefs{}, uses: map[string]map[string]int{}, claimVolume: map[string]string{}}
}

// nodeName is the node a user is, if it is one.
func nodeName(a Attributes) (string, bool) {
	name, ok := strings.CutPrefix(a.User.Name, NodeUserPrefix)
	if !ok || name == "" {
		return "", false
	}
	for _, g := range a.User.Groups {
		if g == NodesGroup {
			return name, true
		}
	}
	return "", false
}

// Authorize decides the requests of node identities; others are not its
// business.
func (n *Node) Authorize(a Attributes) (Decision, string) {
	node, ok := nodeName(a)
	if !ok {
		return NoOpinion, ""
	}
	if a.IsResource && a.APIGroup == "" {
		switch a.Resource {
		case "secrets", "configmaps", "persistentvolumeclaims":
			if a.Subresource == "" && a.Verb == "get" {
				return n.related(node, a.Resource+"/"+a.Namespace+"/"+a.Name)
			}
			if a.Resource == "persistentvolumeclaims" && a.Subresource == "status" && (a.Verb == "get" || a.Verb == "patch" || a.Verb == "update") {
				return n.related(node, "persistentvolumeclaims/"+a.Namespace+"/"+a.Name)
			}
			return NoOpinion, fmt.Sprintf("can only get individual resources of this type")
		case "persistentvolumes":
			if a.Verb == "get" && a.Subresource == "" {
				return n.related(node, "persistentvolumes//"+a.Name)
			}
		case "serviceaccounts":
			if (a.Subresource == "token" && a.Verb == "create") || (a.Subresource == "" && a.Verb == "get") {
				return n.related(node, "serviceaccounts/"+a.Namespace+"/"+a.Name)
			}
		case "pods":
			// A node deletes or evicts only pods bound to it.
			if (a.Verb == "delete" && a.Subresource == "") || (a.Verb == "create" && a.Subresource == "eviction") {
				n.mu.RLock()
				p := n.pods[a.Namespace+"/"+a.Name]
				n.mu.RUnlock()
				if p == nil || p.node != node {
					return NoOpinion, fmt.Sprintf("node %q can only %s pods bound to itself", node, map[string]string{"delete": "delete", "create": "evict"}[a.Verb])
				}
			}
		case "nodes":
			switch a.Verb {
			case "update", "patch", "delete":
				if a.Name != node {
					return NoOpinion, fmt.Sprintf("node %q is not allowed to modify node %q", node, a.Name)
				}
			}
		}
	}
	if a.IsResource && a.APIGroup == "discovery.k8s.io" && a.Resource == "endpointslices" && a.Namespace == DNSNamespace {
		// The node's DNS server publishes itself as an endpoint of the
		// cluster DNS Service, in a slice named for the node (its name on
		// create is checked by NodeRestriction).
		switch a.Verb {
		case "create":
			return Allow, ""
		case "get", "update", "patch", "delete":
			if a.Name == DNSSlicePrefix+node {
				return Allow, ""
			}
		}
	}
	if a.IsResource && a.APIGroup == "coordination.k8s.io" && a.Resource == "leases" && a.Name != "" && a.Verb != "create" {
		if a.Namespace != corev1.NamespaceNodeLease || a.Name != node {
			return NoOpinion, fmt.Sprintf("node %q may only use its own lease in %s", node, corev1.NamespaceNodeLease)
		}
	}
	for i := range n.rules {
		if RuleAllows(&n.rules[i], a) {
			return Allow, ""
		}
	}
	return NoOpinion, ""
}

func (n *Node) related(node, key string) (Decision, string) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if strings.HasPrefix(key, "persistentvolumes//") {
		pv := strings.TrimPrefix(key, "persistentvolumes//")
		for ref := range n.uses[node] {
			if claim, ok := strings.CutPrefix(ref, "persistentvolumeclaims/"); ok && n.claimVolume[claim] == pv {
				return Allow, ""
			}
		}
	} else if n.uses[node][key] > 0 {
		return Allow, ""
	}
	return NoOpinion, fmt.Sprintf("no relationship found between node '%s' and this object", node)
}

// SetPod records what a pod bound to a node uses (a pod not yet bound
// uses nothing of any node's).
func (n *Node) SetPod(p *corev1.Pod) {
	key := p.Namespace + "/" + p.Name
	refs := podReferences(p)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dropPodLocked(key)
	if p.Spec.NodeName == "" {
		return
	}
	n.pods[key] = &podRefs{node: p.Spec.NodeName, refs: refs}
	m := n.uses[p.Spec.NodeName]
	if m == nil {
		m = map[string]int{}
		n.uses[p.Spec.NodeName] = m
	}
	for _, r := range refs {
		m[r]++
	}
}

// DeletePod forgets a pod.
func (n *Node) DeletePod(namespace, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dropPodLocked(namespace + "/" + name)
}

func (n *Node) dropPodLocked(key string) {
	old := n.pods[key]
	if old == nil {
		return
	}
	delete(n.pods, key)
	m := n.uses[old.node]
	for _, r := range old.refs {
		if m[r]--; m[r] <= 0 {
			delete(m, r)
		}
	}
	if len(m) == 0 {
		delete(n.uses, old.node)
	}
}

// SetClaim records the volume a claim is bound to.
func (n *Node) SetClaim(c *corev1.PersistentVolumeClaim) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c.Spec.VolumeName == "" {
		delete(n.claimVolume, c.Namespace+"/"+c.Name)
		return
	}
	n.claimVolume[c.Namespace+"/"+c.Name] = c.Spec.VolumeName
}

// DeleteClaim forgets a claim.
func (n *Node) DeleteClaim(namespace, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.claimVolume, namespace+"/"+name)
}

// podReferences are the objects a pod's node needs to run it, as
// "resource/namespace/name".
func podReferences(p *corev1.Pod) []string {
	seen := map[string]bool{}
	var out []string
	add := func(resource, name string) {
		if name == "" {
			return
		}
		k := resource + "/" + p.Namespace + "/" + name
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sa := p.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	add("serviceaccounts", sa)
	for _, s := range p.Spec.ImagePullSecrets {
		add("secrets", s.Name)
	}
	for _, v := range p.Spec.Volumes {
		switch {
		case v.Secret != nil:
			add("secrets", v.Secret.SecretName)
		case v.ConfigMap != nil:
			add("configmaps", v.ConfigMap.Name)
		case v.PersistentVolumeClaim != nil:
			add("persistentvolumeclaims", v.PersistentVolumeClaim.ClaimName)
		case v.Ephemeral != nil:
			add("persistentvolumeclaims", p.Name+"-"+v.Name)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.Secret != nil {
					add("secrets", s.Secret.Name)
				}
				if s.ConfigMap != nil {
					add("configmaps", s.ConfigMap.Name)
				}
			}
		case v.ISCSI != nil && v.ISCSI.SecretRef != nil:
			add("secrets", v.ISCSI.SecretRef.Name)
		case v.CSI != nil && v.CSI.NodePublishSecretRef != nil:
			add("secrets", v.CSI.NodePublishSecretRef.Name)
		}
	}
	containers := func(cs []corev1.Container) {
		for _, c := range cs {
			for _, e := range c.EnvFrom {
				if e.SecretRef != nil {
					add("secrets", e.SecretRef.Name)
				}
				if e.ConfigMapRef != nil {
					add("configmaps", e.ConfigMapRef.Name)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if e.ValueFrom.SecretKeyRef != nil {
					add("secrets", e.ValueFrom.SecretKeyRef.Name)
				}
				if e.ValueFrom.ConfigMapKeyRef != nil {
					add("configmaps", e.ValueFrom.ConfigMapKeyRef.Name)
				}
			}
		}
	}
	containers(p.Spec.InitContainers)
	containers(p.Spec.Containers)
	for _, e := range p.Spec.EphemeralContainers {
		containers([]corev1.Container{corev1.Container(e.EphemeralContainerCommon)})
	}
	return out
}

// Forget drops what is known of pods or persistentvolumeclaims, before a
// full reload.
func (n *Node) Forget(resource string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch resource {
	case "pods":
		n.pods, n.uses = map[string]*podRefs{}, map[string]map[string]int{}
	case "persistentvolumeclaims":
		n.claimVolume = map[string]string{}
	}
}
