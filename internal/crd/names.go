package crd

import (
	"fmt"
	"slices"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Status is the status c should have, given the other definitions of the
// cluster (their accepted names are taken; c's own entry is skipped), as
// upstream's naming and establishing controllers keep it: the names c asks
// for are accepted unless another definition of its group holds one of them
// (the names it held before are kept then), and a definition whose names
// were once accepted is Established for good. A terminating definition
// keeps what it has and says so.
func Status(c *CRD, others []*CRD, now metav1.Time) apiextensionsv1.CustomResourceDefinitionStatus {
	st := *c.Status.DeepCopy()
	if Terminating(c) {
		st.Conditions = setCondition(st.Conditions, apiextensionsv1.CustomResourceDefinitionCondition{
			Type: apiextensionsv1.Terminating, Status: apiextensionsv1.ConditionTrue,
			Reason: "InstanceDeletionInProgress", Message: "CustomResource deletion is in progress",
		}, now)
		return st
	}
	reason, message := conflict(c, others)
	accepted := apiextensionsv1.CustomResourceDefinitionCondition{
		Type: apiextensionsv1.NamesAccepted, Status: apiextensionsv1.ConditionTrue,
		Reason: "NoConflicts", Message: "no conflicts found",
	}
	if reason != "" {
		accepted.Status, accepted.Reason, accepted.Message = apiextensionsv1.ConditionFalse, reason, message
	} else {
		st.AcceptedNames = c.Spec.Names
	}
	st.Conditions = setCondition(st.Conditions, accepted, now)
	switch {
	case Established(c):
	case reason == "":
		st.Conditions = setCondition(st.Conditions, apiextensionsv1.CustomResourceDefinitionCondition{
			Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue,
			Reason: "InitialNamesAccepted", Message: "the initial names have been accepted",
		}, now)
	default:
		st.Conditions = setCondition(st.Conditions, apiextensionsv1.CustomResourceDefinitionCondition{
			Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionFalse,
			Reason: "NotAccepted", Message: "not all names are accepted",
		}, now)
	}
	// A new storage version joins the versions objects may be stored in.
	if v := StorageVersion(c); v != "" && !slices.Contains(st.StoredVersions, v) {
		st.StoredVersions = append(st.StoredVersions, v)
	}
	return st
}

// conflict names the first of c's requested names another definition of
// the group holds: (reason, message), or empty strings.
func conflict(c *CRD, others []*CRD) (string, string) {
	resources, kinds := map[string]bool{}, map[string]bool{}
	for _, o := range others {
		if o.Name == c.Name || o.Spec.Group != c.Spec.Group {
			continue
		}
		n := o.Status.AcceptedNames
		resources[n.Plural], resources[n.Singular] = true, true
		for _, s := range n.ShortNames {
			resources[s] = true
		}
		kinds[n.Kind], kinds[n.ListKind] = true, true
	}
	delete(resources, "")
	delete(kinds, "")
	names := c.Spec.Names
	inUse := func(s string) string { return fmt.Sprintf("%q is already in use", s) }
	switch {
	case resources[names.Plural]:
		return "PluralConflict", inUse(names.Plural)
	case resources[names.Singular]:
		return "SingularConflict", inUse(names.Singular)
	case kinds[names.Kind]:
		return "KindConflict", inUse(names.Kind)
	case kinds[names.ListKind]:
		return "ListKindConflict", inUse(names.ListKind)
	}
	for _, s := range names.ShortNames {
		if resources[s] {
			return "ShortNamesConflict", inUse(s)
		}
	}
	return "", ""
}

// setCondition sets cond in list, keeping the transition time when the
// status did not change.
func setCondition(list []apiextensionsv1.CustomResourceDefinitionCondition, cond apiextensionsv1.CustomResourceDefinitionCondition, now metav1.Time) []apiextensionsv1.CustomResourceDefinitionCondition {
	cond.LastTransitionTime = now
	for i := range list {
		if list[i].Type != cond.Type {
			continue
		}
		if list[i].Status == cond.Status {
			cond.LastTransitionTime = list[i].LastTransitionTime
		}
		list[i] = cond
		return list
	}
	return append(list, cond)
}
