// Package aggregator holds API aggregation (apiregistration.k8s.io/v1
// APIService): the rules an APIService obeys, the checks that decide it is
// Available, the proxy that carries requests for its group-version to the
// Service behind it, and the discovery that server publishes. The type
// itself lives in upstream's aggregator, which skiff does not import; the
// few fields skiff reads are declared here.
package aggregator

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// APIService is apiregistration.k8s.io/v1 APIService as its JSON reads.
// The struct tags also carry upstream's strategic-merge-patch directives
// (conditions merge by type), so a strategic merge patch treats it as
// upstream does.
type APIService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              Spec   `json:"spec,omitempty"`
	Status            Status `json:"status,omitempty"`
}

// Spec is an APIService's spec.
type Spec struct {
	Service               *ServiceReference `json:"service,omitempty"`
	Group                 string            `json:"group,omitempty"`
	Version               string            `json:"version,omitempty"`
	InsecureSkipTLSVerify bool              `json:"insecureSkipTLSVerify,omitempty"`
	CABundle              []byte            `json:"caBundle,omitempty"`
	GroupPriorityMinimum  int32             `json:"groupPriorityMinimum"`
	VersionPriority       int32             `json:"versionPriority"`
}

// ServiceReference names the Service an APIService is served by.
type ServiceReference struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Port      *int32 `json:"port,omitempty"`
}

// Status is an APIService's status.
type Status struct {
	Conditions []Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// Condition is one APIService condition.
type Condition struct {
	Type               string      `json:"type"`
	Status             string      `json:"status"`
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
	Reason             string      `json:"reason,omitempty"`
	Message            string      `json:"message,omitempty"`
}

// Available is the condition type the aggregator keeps.
const Available = "Available"

// DefaultPort is the Service port of an APIService that names none.
const DefaultPort int32 = 443

// FromObject reads an APIService from its stored form.
func FromObject(obj runtime.Object) (*APIService, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("APIService is a %T", obj)
	}
	a := &APIService{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, a); err != nil {
		return nil, fmt.Errorf("APIService %s: %w", u.GetName(), err)
	}
	return a, nil
}

// Port is the Service port requests go to.
func (a *APIService) Port() int32 {
	if a.Spec.Service == nil || a.Spec.Service.Port == nil {
		return DefaultPort
	}
	return *a.Spec.Service.Port
}

// Remote reports whether another server serves the group-version (a
// local APIService names no Service).
func (a *APIService) Remote() bool { return a.Spec.Service != nil }

// Condition returns the condition of type t, if set.
func (a *APIService) Condition(t string) (Condition, bool) {
	for _, c := range a.Status.Conditions {
		if c.Type == t {
			return c, true
		}
	}
	return Condition{}, false
}

// IsAvailable reports whether the Available condition is True.
func (a *APIService) IsAvailable() bool {
	c, ok := a.Condition(Available)
	return ok && c.Status == string(metav1.ConditionTrue)
}

// Validate checks an APIService as upstream's aggregator does; the name
// itself (a path segment) is checked by the registry.
func Validate(a *APIService) field.ErrorList {
	var errs field.ErrorList
	if want := a.Spec.Version + "." + a.Spec.Group; a.Name != want {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), a.Name, fmt.Sprintf("must be `spec.version+\".\"+spec.group`: %q", want)))
	}
	spec := field.NewPath("spec")
	if a.Spec.Group == "" && a.Spec.Version != "v1" {
		errs = append(errs, field.Required(spec.Child("group"), "only v1 may have an empty group and it better be legacy kube"))
	}
	if a.Spec.Group != "" {
		for _, msg := range validation.IsDNS1123Subdomain(a.Spec.Group) {
			errs = append(errs, field.Invalid(spec.Child("group"), a.Spec.Group, msg))
		}
	}
	for _, msg := range validation.IsDNS1035Label(a.Spec.Version) {
		errs = append(errs, field.Invalid(spec.Child("version"), a.Spec.Version, msg))
	}
	if a.Spec.GroupPriorityMinimum <= 0 || a.Spec.GroupPriorityMinimum > 20000 {
		errs = append(errs, field.Invalid(spec.Child("groupPriorityMinimum"), a.Spec.GroupPriorityMinimum, "must be positive and less than 20000"))
	}
	if a.Spec.VersionPriority <= 0 || a.Spec.VersionPriority > 1000 {
		errs = append(errs, field.Invalid(spec.Child("versionPriority"), a.Spec.VersionPriority, "must be positive and less than 1000"))
	}
	if a.Spec.Service == nil {
		if len(a.Spec.CABundle) != 0 {
			errs = append(errs, field.Invalid(spec.Child("caBundle"), fmt.Sprintf("%d bytes", len(a.Spec.CABundle)), "local APIServices may not have a caBundle"))
		}
		if a.Spec.InsecureSkipTLSVerify {
			errs = append(errs, field.Invalid(spec.Child("insecureSkipTLSVerify"), a.Spec.InsecureSkipTLSVerify, "local APIServices may not have insecureSkipTLSVerify"))
		}
		return errs
	}
	svc := spec.Child("service")
	if a.Spec.Service.Namespace == "" {
		errs = append(errs, field.Required(svc.Child("namespace"), ""))
	}
	if a.Spec.Service.Name == "" {
		errs = append(errs, field.Required(svc.Child("name"), ""))
	}
	if msgs := validation.IsValidPortNum(int(a.Port())); msgs != nil {
		errs = append(errs, field.Invalid(svc.Child("port"), a.Port(), "port is not valid: "+strings.Join(msgs, ", ")))
	}
	if a.Spec.InsecureSkipTLSVerify && len(a.Spec.CABundle) > 0 {
		errs = append(errs, field.Invalid(spec.Child("insecureSkipTLSVerify"), a.Spec.InsecureSkipTLSVerify, "may not be true if caBundle is present"))
	}
	return errs
}

// LocalPriority is the group and version priority upstream gives the
// APIServices of its own groups; groups it does not list (those of custom
// resources) get 1000 and 100.
func LocalPriority(group string) (groupPriority, versionPriority int32) {
	if p, ok := localPriority[group]; ok {
		return p, 15
	}
	return 1000, 100
}

var localPriority = map[string]int32{"": 18000, "apiregistration.k8s.io": 18000, "apps": 17800, "events.k8s.io": 17750,
	"authentication.k8s.io": 17700, "authorization.k8s.io": 17600, "autoscaling": 17500, "batch": 17400,
	"certificates.k8s.io": 17300, "networking.k8s.io": 17200, "policy": 17100, "rbac.authorization.k8s.io": 17000,
	"storage.k8s.io": 16800, "admissionregistration.k8s.io": 16700, "apiextensions.k8s.io": 16700, "scheduling.k8s.io": 16600,
	"coordination.k8s.io": 16500, "node.k8s.io": 16300, "discovery.k8s.io": 16200, "flowcontrol.apiserver.k8s.io": 16100,
	"resource.k8s.io": 15900, "internal.apiserver.k8s.io": 15500, "storagemigration.k8s.io": 15400}
