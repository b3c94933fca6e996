package registry

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/skiff-sh/skiff/internal/admission/webhook"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// webhookConfigStrategy: Mutating- and ValidatingWebhookConfigurations,
// defaulted and validated as upstream.
func webhookConfigStrategy(r *Resource) {
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Webhooks", "integer", 0, "Webhooks indicates the number of webhooks in the configuration."), ageCol}
	r.Default = func(obj runtime.Object) {
		switch c := obj.(type) {
		case *admissionregistrationv1.MutatingWebhookConfiguration:
			for i := range c.Webhooks {
				w := &c.Webhooks[i]
				defaultWebhook(&w.FailurePolicy, &w.MatchPolicy, &w.NamespaceSelector, &w.ObjectSelector, &w.TimeoutSeconds, &w.ClientConfig, w.Rules)
				if w.ReinvocationPolicy == nil {
					w.ReinvocationPolicy = ptr.To(admissionregistrationv1.NeverReinvocationPolicy)
				}
			}
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			for i := range c.Webhooks {
				w := &c.Webhooks[i]
				defaultWebhook(&w.FailurePolicy, &w.MatchPolicy, &w.NamespaceSelector, &w.ObjectSelector, &w.TimeoutSeconds, &w.ClientConfig, w.Rules)
			}
		}
	}
	r.Validate = func(obj runtime.Object) field.ErrorList {
		var errs field.ErrorList
		names := sets.New[string]()
		switch c := obj.(type) {
		case *admissionregistrationv1.MutatingWebhookConfiguration:
			for i, w := range c.Webhooks {
				errs = append(errs, validateWebhook(field.NewPath("webhooks").Index(i), names, w.Name, w.ClientConfig, w.Rules, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.FailurePolicy, w.MatchConditions)...)
			}
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			for i, w := range c.Webhooks {
				errs = append(errs, validateWebhook(field.NewPath("webhooks").Index(i), names, w.Name, w.ClientConfig, w.Rules, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.FailurePolicy, w.MatchConditions)...)
			}
		}
		return errs
	}
	r.Row = func(obj runtime.Object, _ bool) []any {
		n := 0
		switch c := obj.(type) {
		case *admissionregistrationv1.MutatingWebhookConfiguration:
			n = len(c.Webhooks)
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			n = len(c.Webhooks)
		}
		return []any{obj.(metav1.Object).GetName(), int64(n), ageOf(obj)}
	}
}

func defaultWebhook(fp **admissionregistrationv1.FailurePolicyType, mp **admissionregistrationv1.MatchPolicyType, ns, os **metav1.LabelSelector, timeout **int32, cc *admissionregistrationv1.WebhookClientConfig, rules []admissionregistrationv1.RuleWithOperations) {
	if *fp == nil {
		*fp = ptr.To(admissionregistrationv1.Fail)
	}
	if *mp == nil {
		*mp = ptr.To(admissionregistrationv1.Equivalent)
	}
	if *ns == nil {
		*ns = &metav1.LabelSelector{}
	}
	if *os == nil {
		*os = &metav1.LabelSelector{}
	}
	if *timeout == nil {
		*timeout = ptr.To[int32](10)
	}
	if cc.Service != nil && cc.Service.Port == nil {
		cc.Service.Port = ptr.To[int32](443)
	}
	for i := range rules {
		if rules[i].Scope == nil {
			rules[i].Scope = ptr.To(admissionregistrationv1.AllScopes)
		}
	}
}

func validateWebhook(p *field.Path, names sets.Set[string], name string, cc admissionregistrationv1.WebhookClientConfig, rules []admissionregistrationv1.RuleWithOperations,
	sideEffects *admissionregistrationv1.SideEffectClass, timeout *int32, versions []string, fp *admissionregistrationv1.FailurePolicyType, conds []admissionregistrationv1.MatchCondition) field.ErrorList {
	var errs field.ErrorList
	if names.Has(name) {
		errs = append(errs, field.Duplicate(p.Child("name"), name))
	}
	names.Insert(name)
	for _, msg := range utilvalidation.IsDNS1123Subdomain(name) {
		errs = append(errs, field.Invalid(p.Child("name"), name, msg))
	}
	if len(strings.Split(name, ".")) < 3 {
		errs = append(errs, field.Invalid(p.Child("name"), name, "should be a domain with at least three segments separated by dots"))
	}
	errs = append(errs, validateClientConfig(p.Child("clientConfig"), cc)...)
	for i, r := range rules {
		rp := p.Child("rules").Index(i)
		if len(r.Operations) == 0 {
			errs = append(errs, field.Required(rp.Child("operations"), ""))
		}
		if len(r.APIGroups) == 0 {
			errs = append(errs, field.Required(rp.Child("apiGroups"), ""))
		}
		if len(r.APIVersions) == 0 {
			errs = append(errs, field.Required(rp.Child("apiVersions"), ""))
		}
		if len(r.Resources) == 0 {
			errs = append(errs, field.Required(rp.Child("resources"), ""))
		}
	}
	switch {
	case sideEffects == nil:
		errs = append(errs, field.Required(p.Child("sideEffects"), "must specify one of None, NoneOnDryRun"))
	case *sideEffects != admissionregistrationv1.SideEffectClassNone && *sideEffects != admissionregistrationv1.SideEffectClassNoneOnDryRun:
		errs = append(errs, field.NotSupported(p.Child("sideEffects"), *sideEffects, []string{"None", "NoneOnDryRun"}))
	}
	if timeout != nil && (*timeout < 1 || *timeout > 30) {
		errs = append(errs, field.Invalid(p.Child("timeoutSeconds"), *timeout, "the timeout value must be between 1 and 30 seconds"))
	}
	if fp != nil && *fp != admissionregistrationv1.Fail && *fp != admissionregistrationv1.Ignore {
		errs = append(errs, field.NotSupported(p.Child("failurePolicy"), *fp, []string{"Fail", "Ignore"}))
	}
	supported := false
	for _, v := range versions {
		supported = supported || v == "v1" || v == "v1beta1"
	}
	if !supported {
		errs = append(errs, field.Invalid(p.Child("admissionReviewVersions"), versions, "must include at least one of v1, v1beta1"))
	}
	condNames := sets.New[string]()
	for i, c := range conds {
		cp := p.Child("matchConditions").Index(i)
		if c.Name == "" {
			errs = append(errs, field.Required(cp.Child("name"), ""))
		} else if condNames.Has(c.Name) {
			errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
		}
		condNames.Insert(c.Name)
		if c.Expression == "" {
			errs = append(errs, field.Required(cp.Child("expression"), ""))
		} else if _, err := webhook.CompileCondition(c.Expression); err != nil {
			errs = append(errs, field.Invalid(cp.Child("expression"), c.Expression, err.Error()))
		}
	}
	return errs
}

func validateClientConfig(p *field.Path, cc admissionregistrationv1.WebhookClientConfig) field.ErrorList {
	switch {
	case cc.URL == nil && cc.Service == nil:
		return field.ErrorList{field.Required(p, "exactly one of url or service is required")}
	case cc.URL != nil && cc.Service != nil:
		return field.ErrorList{field.Required(p, "exactly one of url or service is required")}
	case cc.URL != nil:
		u, err := url.Parse(*cc.URL)
		switch {
		case err != nil:
			return field.ErrorList{field.Invalid(p.Child("url"), *cc.URL, fmt.Sprintf("url must be a valid URL: %v", err))}
		case u.Scheme != "https":
			return field.ErrorList{field.Invalid(p.Child("url"), *cc.URL, "'https' is the only allowed URL scheme")}
		case u.Host == "":
			return field.ErrorList{field.Invalid(p.Child("url"), *cc.URL, "host must be specified")}
		case u.User != nil:
			return field.ErrorList{field.Invalid(p.Child("url"), *cc.URL, "user information is not permitted in the URL")}
		case u.Fragment != "" || u.RawQuery != "":
			return field.ErrorList{field.Invalid(p.Child("url"), *cc.URL, "fragments and query parameters are not permitted in the URL")}
		}
	default:
		s := cc.Service
		var errs field.ErrorList
		if s.Name == "" {
			errs = append(errs, field.Required(p.Child("service", "name"), "service name is required"))
		}
		if s.Namespace == "" {
			errs = append(errs, field.Required(p.Child("service", "namespace"), "service namespace is required"))
		}
		if s.Path != nil && *s.Path != "" && !strings.HasPrefix(*s.Path, "/") {
			errs = append(errs, field.Invalid(p.Child("service", "path"), *s.Path, "must start with a '/'"))
		}
		if s.Port != nil && (*s.Port < 1 || *s.Port > 65535) {
			errs = append(errs, field.Invalid(p.Child("service", "port"), *s.Port, "port is not valid: must be between 1 and 65535, inclusive"))
		}
		return errs
	}
	return nil
}

// admissionPolicyStrategy: ValidatingAdmissionPolicies and their bindings,
// validated as upstream (expressions are compiled when used: a policy whose
// expressions do not compile fails its bindings' requests under their
// failure policy).
func admissionPolicyStrategy(r *Resource) {
	r.Columns, r.Row = createdAtTable()
	r.Default = func(obj runtime.Object) {
		switch p := obj.(type) {
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			if p.Spec.FailurePolicy == nil {
				p.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Fail)
			}
			if m := p.Spec.MatchConstraints; m != nil {
				defaultMatchResources(m)
			}
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			if m := p.Spec.MatchResources; m != nil {
				defaultMatchResources(m)
			}
		}
	}
	r.Validate = func(obj runtime.Object) field.ErrorList {
		var errs field.ErrorList
		switch p := obj.(type) {
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			spec := field.NewPath("spec")
			if len(p.Spec.Validations) == 0 && len(p.Spec.AuditAnnotations) == 0 {
				errs = append(errs, field.Required(spec.Child("validations"), "validations or auditAnnotations must contain at least one item"))
			}
			if p.Spec.MatchConstraints == nil || len(p.Spec.MatchConstraints.ResourceRules) == 0 {
				errs = append(errs, field.Required(spec.Child("matchConstraints", "resourceRules"), ""))
			}
			for i, v := range p.Spec.Validations {
				if strings.TrimSpace(v.Expression) == "" {
					errs = append(errs, field.Required(spec.Child("validations").Index(i).Child("expression"), "expression is not specified"))
				}
			}
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			spec := field.NewPath("spec")
			if p.Spec.PolicyName == "" {
				errs = append(errs, field.Required(spec.Child("policyName"), ""))
			}
			if len(p.Spec.ValidationActions) == 0 {
				errs = append(errs, field.Required(spec.Child("validationActions"), ""))
			}
			seen := sets.New[admissionregistrationv1.ValidationAction]()
			for i, a := range p.Spec.ValidationActions {
				ap := spec.Child("validationActions").Index(i)
				switch {
				case seen.Has(a):
					errs = append(errs, field.Duplicate(ap, a))
				case a != admissionregistrationv1.Deny && a != admissionregistrationv1.Warn && a != admissionregistrationv1.Audit:
					errs = append(errs, field.NotSupported(ap, a, []string{"Audit", "Deny", "Warn"}))
				}
				seen.Insert(a)
			}
			if seen.Has(admissionregistrationv1.Deny) && seen.Has(admissionregistrationv1.Warn) {
				errs = append(errs, field.Invalid(spec.Child("validationActions"), p.Spec.ValidationActions, "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)"))
			}
			if ref := p.Spec.ParamRef; ref != nil && ref.ParameterNotFoundAction == nil {
				errs = append(errs, field.Required(spec.Child("paramRef", "parameterNotFoundAction"), ""))
			}
		}
		return errs
	}
}

func defaultMatchResources(m *admissionregistrationv1.MatchResources) {
	if m.NamespaceSelector == nil {
		m.NamespaceSelector = &metav1.LabelSelector{}
	}
	if m.ObjectSelector == nil {
		m.ObjectSelector = &metav1.LabelSelector{}
	}
	if m.MatchPolicy == nil {
		m.MatchPolicy = ptr.To(admissionregistrationv1.Equivalent)
	}
	for i := range m.ResourceRules {
		if m.ResourceRules[i].Scope == nil {
			m.ResourceRules[i].Scope = ptr.To(admissionregistrationv1.AllScopes)
		}
	}
}

// mutatingPolicyStrategy: MutatingAdmissionPolicies and their bindings.
func mutatingPolicyStrategy(r *Resource) {
	r.Columns, r.Row = createdAtTable()
	r.Default = func(obj runtime.Object) {
		switch p := obj.(type) {
		case *admissionregistrationv1.MutatingAdmissionPolicy:
			if p.Spec.FailurePolicy == nil {
				p.Spec.FailurePolicy = ptr.To(admissionregistrationv1.Fail)
			}
			if p.Spec.ReinvocationPolicy == "" {
				p.Spec.ReinvocationPolicy = admissionregistrationv1.NeverReinvocationPolicy
			}
			if m := p.Spec.MatchConstraints; m != nil {
				defaultMatchResources(m)
			}
		case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
			if m := p.Spec.MatchResources; m != nil {
				defaultMatchResources(m)
			}
		}
	}
	r.Validate = func(obj runtime.Object) field.ErrorList {
		var errs field.ErrorList
		spec := field.NewPath("spec")
		switch p := obj.(type) {
		case *admissionregistrationv1.MutatingAdmissionPolicy:
			if len(p.Spec.Mutations) == 0 {
				errs = append(errs, field.Required(spec.Child("mutations"), "mutations must contain at least one item"))
			}
			for i, m := range p.Spec.Mutations {
				mp := spec.Child("mutations").Index(i)
				switch m.PatchType {
				case admissionregistrationv1.PatchTypeApplyConfiguration:
					if m.ApplyConfiguration == nil || m.ApplyConfiguration.Expression == "" {
						errs = append(errs, field.Required(mp.Child("applyConfiguration"), "applyConfiguration.expression is required when patchType is ApplyConfiguration"))
					}
				case admissionregistrationv1.PatchTypeJSONPatch:
					if m.JSONPatch == nil || m.JSONPatch.Expression == "" {
						errs = append(errs, field.Required(mp.Child("jsonPatch"), "jsonPatch.expression is required when patchType is JSONPatch"))
					}
				default:
					errs = append(errs, field.NotSupported(mp.Child("patchType"), m.PatchType, []string{"ApplyConfiguration", "JSONPatch"}))
				}
			}
			if p.Spec.MatchConstraints == nil || len(p.Spec.MatchConstraints.ResourceRules) == 0 {
				errs = append(errs, field.Required(spec.Child("matchConstraints", "resourceRules"), ""))
			}
		case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
			if p.Spec.PolicyName == "" {
				errs = append(errs, field.Required(spec.Child("policyName"), ""))
			}
		}
		return errs
	}
}
