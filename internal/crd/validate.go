package crd

import (
	"strings"

	crdschema "github.com/skiff-sh/skiff/internal/crd/schema"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validate checks a definition as upstream does on create: its name is
// plural.group, the group is a domain, the names are valid labels, one
// version is the storage version, each version has a structural schema,
// and the conversion strategy is complete.
func Validate(c *CRD) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if c.Name != c.Spec.Names.Plural+"."+c.Spec.Group {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), c.Name, `must be spec.names.plural+"."+spec.group`))
	}
	errs = append(errs, validateGroup(c.Spec.Group, spec.Child("group"))...)
	switch c.Spec.Scope {
	case apiextensionsv1.NamespaceScoped, apiextensionsv1.ClusterScoped:
	case "":
		errs = append(errs, field.Required(spec.Child("scope"), ""))
	default:
		errs = append(errs, field.NotSupported(spec.Child("scope"), c.Spec.Scope, []string{string(apiextensionsv1.ClusterScoped), string(apiextensionsv1.NamespaceScoped)}))
	}
	errs = append(errs, validateNames(c.Spec.Names, spec.Child("names"))...)
	errs = append(errs, validateVersions(c, spec.Child("versions"))...)
	if c.Spec.PreserveUnknownFields {
		errs = append(errs, field.Invalid(spec.Child("preserveUnknownFields"), true, "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead"))
	}
	errs = append(errs, validateConversion(c, spec.Child("conversion"))...)
	return errs
}

// ValidateUpdate adds to Validate what may not change: the group, scope
// and plural (the name says them), and versions objects are stored in.
func ValidateUpdate(c, old *CRD) field.ErrorList {
	errs := Validate(c)
	spec := field.NewPath("spec")
	if c.Spec.Group != old.Spec.Group {
		errs = append(errs, field.Invalid(spec.Child("group"), c.Spec.Group, "field is immutable"))
	}
	if c.Spec.Scope != old.Spec.Scope && Established(old) {
		errs = append(errs, field.Invalid(spec.Child("scope"), c.Spec.Scope, "field is immutable"))
	}
	if c.Spec.Names.Plural != old.Spec.Names.Plural {
		errs = append(errs, field.Invalid(spec.Child("names", "plural"), c.Spec.Names.Plural, "field is immutable"))
	}
	return errs
}

// ValidateStatus checks what a status write may say: every stored version
// is one of the spec's, and the storage version is among them.
func ValidateStatus(c *CRD) field.ErrorList {
	var errs field.ErrorList
	path := field.NewPath("status", "storedVersions")
	if len(c.Status.StoredVersions) == 0 {
		return append(errs, field.Invalid(path, c.Status.StoredVersions, "must have at least one stored version"))
	}
	versions := sets.New[string]()
	for _, v := range c.Spec.Versions {
		versions.Insert(v.Name)
	}
	for i, v := range c.Status.StoredVersions {
		if !versions.Has(v) {
			errs = append(errs, field.Invalid(path.Index(i), v, "must appear in spec.versions"))
		}
	}
	if sv := StorageVersion(c); sv != "" && !sets.New(c.Status.StoredVersions...).Has(sv) {
		errs = append(errs, field.Invalid(path, c.Status.StoredVersions, "must have the storage version "+sv))
	}
	return errs
}

func validateGroup(group string, path *field.Path) field.ErrorList {
	if group == "" {
		return field.ErrorList{field.Required(path, "")}
	}
	var errs field.ErrorList
	for _, msg := range utilvalidation.IsDNS1123Subdomain(group) {
		errs = append(errs, field.Invalid(path, group, msg))
	}
	if len(strings.Split(group, ".")) < 2 {
		errs = append(errs, field.Invalid(path, group, "should be a domain with at least one dot"))
	}
	return errs
}

func validateNames(n apiextensionsv1.CustomResourceDefinitionNames, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	label := func(value string, p *field.Path, required bool) {
		if value == "" {
			if required {
				errs = append(errs, field.Required(p, ""))
			}
			return
		}
		for _, msg := range utilvalidation.IsDNS1035Label(value) {
			errs = append(errs, field.Invalid(p, value, msg))
		}
	}
	label(n.Plural, path.Child("plural"), true)
	label(n.Singular, path.Child("singular"), false)
	label(strings.ToLower(n.Kind), path.Child("kind"), true)
	label(strings.ToLower(n.ListKind), path.Child("listKind"), false)
	for i, s := range n.ShortNames {
		label(s, path.Child("shortNames").Index(i), true)
	}
	for i, s := range n.Categories {
		label(s, path.Child("categories").Index(i), true)
	}
	if n.Kind != "" && n.Kind == n.ListKind {
		errs = append(errs, field.Invalid(path.Child("listKind"), n.ListKind, "kind and listKind may not be the same or parsing will be ambiguous"))
	}
	return errs
}

func validateVersions(c *CRD, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(c.Spec.Versions) == 0 {
		return field.ErrorList{field.Invalid(path, c.Spec.Versions, "must have exactly one version marked as storage version")}
	}
	storage, seen := 0, sets.New[string]()
	for i, v := range c.Spec.Versions {
		vp := path.Index(i)
		if v.Storage {
			storage++
		}
		for _, msg := range utilvalidation.IsDNS1035Label(v.Name) {
			errs = append(errs, field.Invalid(vp.Child("name"), v.Name, msg))
		}
		if seen.Has(v.Name) {
			errs = append(errs, field.Invalid(vp.Child("name"), v.Name, "must be unique"))
		}
		seen.Insert(v.Name)
		if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			errs = append(errs, field.Required(vp.Child("schema", "openAPIV3Schema"), "schemas are required"))
		} else {
			sp := vp.Child("schema", "openAPIV3Schema")
			structural := Structural(v.Schema.OpenAPIV3Schema, sp)
			errs = append(errs, structural...)
			if len(structural) == 0 {
				_, ruleErrs := crdschema.CompileRules(v.Schema.OpenAPIV3Schema, sp)
				errs = append(errs, ruleErrs...)
			}
		}
		errs = append(errs, validateSubresources(v.Subresources, vp.Child("subresources"))...)
		for j, col := range v.AdditionalPrinterColumns {
			cp := vp.Child("additionalPrinterColumns").Index(j)
			if col.Name == "" {
				errs = append(errs, field.Required(cp.Child("name"), ""))
			}
			if col.JSONPath == "" {
				errs = append(errs, field.Required(cp.Child("jsonPath"), ""))
			}
			switch col.Type {
			case "integer", "number", "string", "boolean", "date":
			default:
				errs = append(errs, field.NotSupported(cp.Child("type"), col.Type, []string{"boolean", "date", "integer", "number", "string"}))
			}
		}
	}
	if storage != 1 {
		errs = append(errs, field.Invalid(path, c.Spec.Versions, "must have exactly one version marked as storage version"))
	}
	served := false
	for _, v := range c.Spec.Versions {
		served = served || v.Served
	}
	if !served {
		errs = append(errs, field.Invalid(path, c.Spec.Versions, "must have at least one served version"))
	}
	return errs
}

func validateSubresources(s *apiextensionsv1.CustomResourceSubresources, path *field.Path) field.ErrorList {
	if s == nil || s.Scale == nil {
		return nil
	}
	var errs field.ErrorList
	sp := path.Child("scale")
	for name, p := range map[string]string{"specReplicasPath": s.Scale.SpecReplicasPath, "statusReplicasPath": s.Scale.StatusReplicasPath} {
		if p == "" {
			errs = append(errs, field.Required(sp.Child(name), ""))
			continue
		}
		if !strings.HasPrefix(p, ".") {
			errs = append(errs, field.Invalid(sp.Child(name), p, "should be a json path under .spec or .status"))
		}
	}
	if !strings.HasPrefix(s.Scale.SpecReplicasPath, ".spec.") && s.Scale.SpecReplicasPath != "" {
		errs = append(errs, field.Invalid(sp.Child("specReplicasPath"), s.Scale.SpecReplicasPath, "should be a json path under .spec"))
	}
	if !strings.HasPrefix(s.Scale.StatusReplicasPath, ".status.") && s.Scale.StatusReplicasPath != "" {
		errs = append(errs, field.Invalid(sp.Child("statusReplicasPath"), s.Scale.StatusReplicasPath, "should be a json path under .status"))
	}
	return errs
}

func validateConversion(c *CRD, path *field.Path) field.ErrorList {
	conv := c.Spec.Conversion
	if conv == nil {
		return nil
	}
	switch conv.Strategy {
	case apiextensionsv1.NoneConverter:
		if conv.Webhook != nil {
			return field.ErrorList{field.Forbidden(path.Child("webhook"), "should not be set when strategy is not set to Webhook")}
		}
	case apiextensionsv1.WebhookConverter:
		if conv.Webhook == nil || conv.Webhook.ClientConfig == nil {
			return field.ErrorList{field.Required(path.Child("webhook", "clientConfig"), "required when strategy is set to Webhook")}
		}
		if len(conv.Webhook.ConversionReviewVersions) == 0 {
			return field.ErrorList{field.Required(path.Child("webhook", "conversionReviewVersions"), "must include at least one of v1, v1beta1")}
		}
	default:
		return field.ErrorList{field.NotSupported(path.Child("strategy"), conv.Strategy, []string{string(apiextensionsv1.NoneConverter), string(apiextensionsv1.WebhookConverter)})}
	}
	return nil
}
