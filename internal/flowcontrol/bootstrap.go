package flowcontrol

import (
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// AutoUpdate is the annotation that lets the server bring a bootstrap
// object back to its default spec at start.
const AutoUpdate = "apf.kubernetes.io/autoupdate-spec"

// Names of the mandatory objects.
const (
	Exempt   = "exempt"
	CatchAll = "catch-all"
)

var meta = func(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Annotations: map[string]string{AutoUpdate: "true"}}
}

func limited(name string, shares, lendable, queues, hand int32) flowcontrolv1.PriorityLevelConfiguration {
	return flowcontrolv1.PriorityLevelConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "flowcontrol.apiserver.k8s.io/v1", Kind: "PriorityLevelConfiguration"}, ObjectMeta: meta(name),
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{Type: flowcontrolv1.PriorityLevelEnablementLimited, Limited: &flowcontrolv1.LimitedPriorityLevelConfiguration{
			NominalConcurrencyShares: ptr.To(shares), LendablePercent: ptr.To(lendable),
			LimitResponse: flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeQueue,
				Queuing: &flowcontrolv1.QueuingConfiguration{Queues: queues, HandSize: hand, QueueLengthLimit: 50}}}}}
}

// PriorityLevels are upstream 1.37's bootstrap priority levels: the
// mandatory exempt and catch-all ones, then the suggested ones.
func PriorityLevels() []flowcontrolv1.PriorityLevelConfiguration {
	exempt := flowcontrolv1.PriorityLevelConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "flowcontrol.apiserver.k8s.io/v1", Kind: "PriorityLevelConfiguration"}, ObjectMeta: meta(Exempt),
		Spec: flowcontrolv1.PriorityLevelConfigurationSpec{Type: flowcontrolv1.PriorityLevelEnablementExempt,
			Exempt: &flowcontrolv1.ExemptPriorityLevelConfiguration{NominalConcurrencyShares: ptr.To[int32](0), LendablePercent: ptr.To[int32](0)}}}
	catchAll := limited(CatchAll, 5, 0, 0, 0)
	catchAll.Spec.Limited.LimitResponse = flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject}
	return []flowcontrolv1.PriorityLevelConfiguration{
		exempt, catchAll,
		limited("system", 30, 33, 64, 6),
		limited("node-high", 40, 25, 64, 6),
		limited("leader-election", 10, 0, 16, 4),
		limited("workload-high", 40, 50, 128, 6),
		limited("workload-low", 100, 90, 128, 6),
		limited("global-default", 20, 50, 128, 6),
	}
}

func users(names ...string) []flowcontrolv1.Subject {
	var out []flowcontrolv1.Subject
	for _, n := range names {
		out = append(out, flowcontrolv1.Subject{Kind: flowcontrolv1.SubjectKindUser, User: &flowcontrolv1.UserSubject{Name: n}})
	}
	return out
}

func groups(names ...string) []flowcontrolv1.Subject {
	var out []flowcontrolv1.Subject
	for _, n := range names {
		out = append(out, flowcontrolv1.Subject{Kind: flowcontrolv1.SubjectKindGroup, Group: &flowcontrolv1.GroupSubject{Name: n}})
	}
	return out
}

func kubeSystemAccounts() flowcontrolv1.Subject {
	return flowcontrolv1.Subject{Kind: flowcontrolv1.SubjectKindServiceAccount, ServiceAccount: &flowcontrolv1.ServiceAccountSubject{Namespace: "kube-system", Name: "*"}}
}

var (
	allResources = flowcontrolv1.ResourcePolicyRule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}, ClusterScope: true, Namespaces: []string{"*"}}
	allURLs      = flowcontrolv1.NonResourcePolicyRule{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}}
	everything   = flowcontrolv1.PolicyRulesWithSubjects{ResourceRules: []flowcontrolv1.ResourcePolicyRule{allResources}, NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{allURLs}}
)

func schema(name, level string, precedence int32, byUser bool, rules ...flowcontrolv1.PolicyRulesWithSubjects) flowcontrolv1.FlowSchema {
	fs := flowcontrolv1.FlowSchema{
		TypeMeta: metav1.TypeMeta{APIVersion: "flowcontrol.apiserver.k8s.io/v1", Kind: "FlowSchema"}, ObjectMeta: meta(name),
		Spec: flowcontrolv1.FlowSchemaSpec{PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: level},
			MatchingPrecedence: precedence, Rules: rules}}
	if byUser {
		fs.Spec.DistinguisherMethod = &flowcontrolv1.FlowDistinguisherMethod{Type: flowcontrolv1.FlowDistinguisherMethodByUserType}
	}
	return fs
}

func withSubjects(r flowcontrolv1.PolicyRulesWithSubjects, s ...flowcontrolv1.Subject) flowcontrolv1.PolicyRulesWithSubjects {
	r.Subjects = s
	return r
}

// FlowSchemas are upstream 1.37's bootstrap flow schemas, mandatory and
// suggested.
func FlowSchemas() []flowcontrolv1.FlowSchema {
	leases := flowcontrolv1.PolicyRulesWithSubjects{ResourceRules: []flowcontrolv1.ResourcePolicyRule{
		{Verbs: []string{"get", "create", "update"}, APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Namespaces: []string{"*"}},
	}}
	nodeHigh := flowcontrolv1.PolicyRulesWithSubjects{ResourceRules: []flowcontrolv1.ResourcePolicyRule{
		{Verbs: []string{"*"}, APIGroups: []string{""}, Resources: []string{"nodes", "nodes/status"}, ClusterScope: true},
		{Verbs: []string{"*"}, APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Namespaces: []string{"kube-node-lease"}},
	}}
	probes := flowcontrolv1.PolicyRulesWithSubjects{NonResourceRules: []flowcontrolv1.NonResourcePolicyRule{
		{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz", "/readyz", "/livez"}}}}
	return []flowcontrolv1.FlowSchema{
		schema(Exempt, Exempt, 1, false, withSubjects(everything, groups("system:masters")...)),
		schema("probes", Exempt, 2, false, withSubjects(probes, groups("system:unauthenticated", "system:authenticated")...)),
		schema("system-leader-election", "leader-election", 100, true, withSubjects(leases, append(users("system:kube-controller-manager", "system:kube-scheduler"), kubeSystemAccounts())...)),
		schema("workload-leader-election", "leader-election", 200, true, withSubjects(leases, kubeSystemAccounts())),
		schema("system-node-high", "node-high", 400, true, withSubjects(nodeHigh, groups("system:nodes")...)),
		schema("system-nodes", "system", 500, true, withSubjects(everything, groups("system:nodes")...)),
		schema("kube-controller-manager", "workload-high", 800, true, withSubjects(everything, users("system:kube-controller-manager")...)),
		schema("kube-scheduler", "workload-high", 800, true, withSubjects(everything, users("system:kube-scheduler")...)),
		schema("kube-system-service-accounts", "workload-high", 900, true, withSubjects(everything, kubeSystemAccounts())),
		schema("service-accounts", "workload-low", 9000, true, withSubjects(everything, groups("system:serviceaccounts")...)),
		schema("global-default", "global-default", 9900, true, withSubjects(everything, groups("system:unauthenticated", "system:authenticated")...)),
		schema(CatchAll, CatchAll, 10000, true, withSubjects(everything, groups("system:unauthenticated", "system:authenticated")...)),
	}
}
