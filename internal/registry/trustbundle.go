package registry

import (
	"crypto/x509"
	"encoding/pem"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// clusterTrustBundleStrategy serves certificates.k8s.io/v1
// ClusterTrustBundles: a PEM bundle of CA certificates, optionally linked to
// a signer, in which case the name starts with the signer's name (its "/"
// written ":") and a colon, as upstream requires.
func clusterTrustBundleStrategy(r *Resource) {
	// Names carry colons; Validate checks them against the signer.
	r.NameFn = pathSegmentName
	r.Validate = asValidate(func(b *certificatesv1.ClusterTrustBundle) field.ErrorList {
		return validateTrustBundle(b)
	})
	r.ValidateUpdate = asValidateUpdate(func(b, prev *certificatesv1.ClusterTrustBundle) field.ErrorList {
		errs := validateTrustBundle(b)
		if b.Spec.SignerName != prev.Spec.SignerName {
			errs = append(errs, field.Invalid(field.NewPath("spec", "signerName"), b.Spec.SignerName, "field is immutable"))
		}
		return errs
	})
	r.Fields = asFields(func(o *certificatesv1.ClusterTrustBundle) fields.Set {
		return fields.Set{"spec.signerName": o.Spec.SignerName}
	})
}

func validateTrustBundle(b *certificatesv1.ClusterTrustBundle) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if s := b.Spec.SignerName; s != "" {
		if prefix := strings.ReplaceAll(s, "/", ":") + ":"; !strings.HasPrefix(b.Name, prefix) {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), b.Name, "ClusterTrustBundle for signerName "+s+" must be named with prefix "+prefix))
		}
		if domain, path, ok := strings.Cut(s, "/"); !ok || domain == "" || path == "" {
			errs = append(errs, field.Invalid(spec.Child("signerName"), s, "must be a fully qualified domain and path of the form 'example.com/signer-name'"))
		}
	} else if strings.Contains(b.Name, ":") {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), b.Name, "ClusterTrustBundle without signer name must not have \":\" in its name"))
	}
	if msg := checkTrustBundlePEM(b.Spec.TrustBundle); msg != "" {
		errs = append(errs, field.Invalid(spec.Child("trustBundle"), "<value omitted>", msg))
	}
	return errs
}

// checkTrustBundlePEM says what is wrong with a bundle ("" if nothing):
// one or more PEM CERTIFICATE blocks without headers, each a certificate.
func checkTrustBundlePEM(bundle string) string {
	rest := []byte(bundle)
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return "entries must be of PEM type \"CERTIFICATE\""
		}
		if len(block.Headers) > 0 {
			return "entries cannot have PEM block headers"
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return "entry cannot be parsed as an X.509 certificate: " + err.Error()
		}
		n++
	}
	if n == 0 {
		return "at least one trust anchor must be provided"
	}
	if strings.TrimSpace(string(rest)) != "" {
		return "contains data that is not a PEM block"
	}
	return ""
}
