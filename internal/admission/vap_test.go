package admission

import (
	"context"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/admission/webhook"
	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/authz"
)

// TestValidatingAdmissionPolicy: a policy limiting replicas by a param,
// bound with Deny in one namespace and Warn in another.
func TestValidatingAdmissionPolicy(t *testing.T) {
	objs := memObjects{}
	objs.add(namespacesGVR, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod", Labels: map[string]string{"env": "prod"}}})
	objs.add(namespacesGVR, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dev", Labels: map[string]string{"env": "dev"}}})
	objs.add(corev1.SchemeGroupVersion.WithResource("configmaps"), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "limits", Namespace: "prod"}, Data: map[string]string{"max": "3"}})
	objs.add(policiesGVR, &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "replicas", UID: "p1", Generation: 1},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			ParamKind: &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{Operations: []admissionregistrationv1.OperationType{"CREATE", "UPDATE"},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}}}}}},
			Variables:   []admissionregistrationv1.Variable{{Name: "max", Expression: "int(params.data.max)"}},
			Validations: []admissionregistrationv1.Validation{{Expression: "object.spec.replicas <= variables.max", MessageExpression: "'replicas must be at most ' + string(variables.max)"}},
		}})
	bind := func(name, env string, actions ...admissionregistrationv1.ValidationAction) {
		objs.add(bindingsGVR, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "replicas", ValidationActions: actions,
				ParamRef:       &admissionregistrationv1.ParamRef{Name: "limits", Namespace: "prod", ParameterNotFoundAction: ptr.To(admissionregistrationv1.DenyAction)},
				MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": env}}}}})
	}
	bind("deny-prod", "prod", admissionregistrationv1.Deny)
	bind("warn-dev", "dev", admissionregistrationv1.Warn)
	p := &validatingPolicies{objects: objs}
	deploy := func(ns string, n int32) *Attributes {
		return &Attributes{Operation: Create, Resource: appsv1.SchemeGroupVersion.WithResource("deployments"), Kind: appsv1.SchemeGroupVersion.WithKind("Deployment"),
			Namespace: ns, Name: "web", User: auth.User{Name: "alice"},
			Object: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To(n)}}}
	}
	if err := p.Validate(context.Background(), deploy("prod", 3)); err != nil {
		t.Errorf("within the limit: %v", err)
	}
	err := p.Validate(context.Background(), deploy("prod", 5))
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy 'replicas' with binding 'deny-prod' denied request: replicas must be at most 3") {
		t.Errorf("over the limit: %v", err)
	}
	var warnings []string
	ctx := WithWarnings(context.Background(), func(w string) { warnings = append(warnings, w) })
	if err := p.Validate(ctx, deploy("dev", 5)); err != nil {
		t.Errorf("Warn binding denied: %v", err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "Validation failed for ValidatingAdmissionPolicy 'replicas' with binding 'warn-dev': replicas must be at most 3") {
		t.Errorf("warnings %q", warnings)
	}
	// The param the Deny binding names is gone: the request is refused.
	delete(objs, key(corev1.SchemeGroupVersion.WithResource("configmaps"), "prod", "limits"))
	if err := p.Validate(context.Background(), deploy("prod", 1)); err == nil || !strings.Contains(err.Error(), "no params found") {
		t.Errorf("missing param: %v", err)
	}
}

// A policy's authorizer checks ask the server's authorizer as the request's
// user: only a user who may update the deployment's scale subresource may
// set more than one replica.
func TestValidatingAdmissionPolicyAuthorizer(t *testing.T) {
	objs := memObjects{}
	objs.add(namespacesGVR, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod"}})
	objs.add(policiesGVR, &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "scalers", UID: "p2", Generation: 1},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{Operations: []admissionregistrationv1.OperationType{"CREATE"},
					Rule: admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}}}}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: "object.spec.replicas <= 1 || authorizer.requestResource.subresource('scale').check('update').allowed()",
				Message:    "only scalers may ask for more than one replica"}},
		}})
	objs.add(bindingsGVR, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "scalers"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "scalers", ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}}})
	var asked []authz.Attributes
	p := &validatingPolicies{objects: objs, authorizer: authz.Func(func(a authz.Attributes) (authz.Decision, string) {
		asked = append(asked, a)
		if a.User.Name == "scaler" {
			return authz.Allow, ""
		}
		return authz.NoOpinion, "no RBAC policy matched"
	})}
	deploy := func(user string, n int32) *Attributes {
		return &Attributes{Operation: Create, Resource: appsv1.SchemeGroupVersion.WithResource("deployments"), Kind: appsv1.SchemeGroupVersion.WithKind("Deployment"),
			Namespace: "prod", Name: "web", User: auth.User{Name: user},
			Object: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "prod"}, Spec: appsv1.DeploymentSpec{Replicas: ptr.To(n)}}}
	}
	if err := p.Validate(context.Background(), deploy("scaler", 5)); err != nil {
		t.Errorf("a scaler: %v", err)
	}
	want := authz.Attributes{User: auth.User{Name: "scaler"}, Verb: "update", IsResource: true, APIGroup: "apps", Resource: "deployments", Subresource: "scale", Namespace: "prod", Name: "web"}
	if len(asked) != 1 || asked[0].Verb != want.Verb || asked[0].Subresource != "scale" || asked[0].Name != "web" || asked[0].APIGroup != "apps" || asked[0].User.Name != "scaler" {
		t.Errorf("asked %+v, want %+v", asked, want)
	}
	if err := p.Validate(context.Background(), deploy("intern", 5)); err == nil || !strings.Contains(err.Error(), "only scalers may ask for more than one replica") {
		t.Errorf("an intern: %v", err)
	}
	if err := p.Validate(context.Background(), deploy("intern", 1)); err != nil {
		t.Errorf("an intern within the rule: %v", err)
	}
}

// Webhook match conditions see the authorizer too: a webhook can be skipped
// for users who may do something.
func TestWebhookConditionAuthorizer(t *testing.T) {
	w := &webhooks{objects: memObjects{}, authorizer: authz.Func(func(a authz.Attributes) (authz.Decision, string) {
		if a.User.Name == "admin" && a.Resource == "nodes" && a.Verb == "delete" {
			return authz.Allow, ""
		}
		return authz.NoOpinion, ""
	})}
	conds := []admissionregistrationv1.MatchCondition{{Name: "not-node-admins",
		Expression: "!authorizer.group('').resource('nodes').check('delete').allowed()"}}
	for user, want := range map[string]bool{"admin": false, "intern": true} {
		a := &Attributes{Operation: Create, Resource: corev1.SchemeGroupVersion.WithResource("configmaps"), Kind: corev1.SchemeGroupVersion.WithKind("ConfigMap"),
			Namespace: "default", Name: "x", User: auth.User{Name: user}, Object: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default"}}}
		got, err := webhook.ConditionsMet(conds, w.conditionVars(a))
		if err != nil || got != want {
			t.Errorf("%s: conditions met %v, %v; want %v", user, got, err, want)
		}
	}
}
