// Package crd holds what the API server decides about
// CustomResourceDefinitions as pure functions: their validation (names,
// versions, structural schemas), the names they are granted among the
// others of their group (the NamesAccepted and Established conditions), and
// the facts the registry serves a custom resource by.
package crd

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// CRD is the stored CustomResourceDefinition type.
type CRD = apiextensionsv1.CustomResourceDefinition

// StorageVersion is the version objects are stored in ("" if none is
// marked, which validation refuses).
func StorageVersion(c *CRD) string {
	for _, v := range c.Spec.Versions {
		if v.Storage {
			return v.Name
		}
	}
	return ""
}

// Condition is c's condition of type t, or nil.
func Condition(c *CRD, t apiextensionsv1.CustomResourceDefinitionConditionType) *apiextensionsv1.CustomResourceDefinitionCondition {
	for i := range c.Status.Conditions {
		if c.Status.Conditions[i].Type == t {
			return &c.Status.Conditions[i]
		}
	}
	return nil
}

// Established reports whether c's resources are to be served.
func Established(c *CRD) bool {
	cond := Condition(c, apiextensionsv1.Established)
	return cond != nil && cond.Status == apiextensionsv1.ConditionTrue
}

// Terminating reports whether c is being deleted (its objects are being
// removed and no new ones are accepted).
func Terminating(c *CRD) bool {
	return c.DeletionTimestamp != nil
}

// CleanupFinalizer holds a CRD until its objects are gone.
const CleanupFinalizer = "customresourcecleanup.apiextensions.k8s.io"
