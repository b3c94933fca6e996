package registry

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/skiff-sh/skiff/internal/podspec"

	certificatesv1 "k8s.io/api/certificates/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// podCertificateRequestStrategy serves certificates.k8s.io/v1
// PodCertificateRequests: a kubelet asks a signer for a pod's certificate
// by a stub PKCS#10 request (its signature proves the kubelet holds the
// key); the signer answers through status. The spec never changes.
func podCertificateRequestStrategy(r *Resource) {
	r.Status = true
	// Signers watch their own requests, kubelets their node's.
	r.Fields = asFields(func(p *certificatesv1.PodCertificateRequest) fields.Set {
		return fields.Set{"spec.signerName": p.Spec.SignerName, "spec.podName": p.Spec.PodName, "spec.nodeName": string(p.Spec.NodeName)}
	})
	r.Default = asDefault(func(p *certificatesv1.PodCertificateRequest) {
		if p.Spec.MaxExpirationSeconds == nil {
			p.Spec.MaxExpirationSeconds = ptr.To[int32](podspec.CertDefaultMaxExpiration)
		}
	})
	r.Validate = asValidate(func(p *certificatesv1.PodCertificateRequest) field.ErrorList {
		return append(validatePCRSpec(&p.Spec), validatePCRStatus(p)...)
	})
	r.ValidateUpdate = asValidateUpdate(func(p, prev *certificatesv1.PodCertificateRequest) field.ErrorList {
		errs := validatePCRStatus(p)
		if !apiequality.Semantic.DeepEqual(p.Spec, prev.Spec) {
			errs = append(errs, field.Invalid(field.NewPath("spec"), "", "field is immutable"))
		}
		return errs
	})
}

func validatePCRSpec(s *certificatesv1.PodCertificateRequestSpec) field.ErrorList {
	spec := field.NewPath("spec")
	errs := podspec.ValidateSignerName(spec.Child("signerName"), s.SignerName)
	for _, f := range []struct{ name, value string }{
		{"podName", s.PodName}, {"podUID", string(s.PodUID)}, {"serviceAccountName", s.ServiceAccountName},
		{"serviceAccountUID", string(s.ServiceAccountUID)}, {"nodeName", string(s.NodeName)}, {"nodeUID", string(s.NodeUID)},
	} {
		if f.value == "" {
			errs = append(errs, field.Required(spec.Child(f.name), ""))
		}
	}
	if m := s.MaxExpirationSeconds; m != nil {
		max := int32(podspec.CertMaxMaxExpiration)
		if podspec.KubernetesSigner(s.SignerName) {
			max = podspec.CertKubernetesMaxExpiration
		}
		if *m < podspec.CertMinMaxExpiration || *m > max {
			errs = append(errs, field.Invalid(spec.Child("maxExpirationSeconds"), *m, fmt.Sprintf("must be in the range [%d, %d]", podspec.CertMinMaxExpiration, max)))
		}
	}
	csr, err := x509.ParseCertificateRequest(s.StubPKCS10Request)
	if err != nil {
		return append(errs, field.Invalid(spec.Child("stubPKCS10Request"), "", "must be a DER-encoded PKCS#10 certificate request: "+err.Error()))
	}
	if err := csr.CheckSignature(); err != nil {
		errs = append(errs, field.Invalid(spec.Child("stubPKCS10Request"), "", "the request's signature does not verify with its public key"))
	}
	if keyType(csr.PublicKey) == "" {
		errs = append(errs, field.NotSupported(spec.Child("stubPKCS10Request"), "", podspec.CertKeyTypes))
	}
	return errs
}

// keyType names a public key as the podCertificate projection does, or ""
// for one it does not allow.
func keyType(k crypto.PublicKey) string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 3072:
			return "RSA3072"
		case 4096:
			return "RSA4096"
		}
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ECDSAP256"
		case elliptic.P384():
			return "ECDSAP384"
		case elliptic.P521():
			return "ECDSAP521"
		}
	case ed25519.PublicKey:
		return "ED25519"
	}
	return ""
}

// validatePCRStatus checks an issued certificate: a PEM chain whose leaf
// holds the requested key, with the times the status states.
func validatePCRStatus(p *certificatesv1.PodCertificateRequest) field.ErrorList {
	st := field.NewPath("status")
	if p.Status.CertificateChain == "" {
		return nil
	}
	var leaf *x509.Certificate
	rest := []byte(p.Status.CertificateChain)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if b.Type != "CERTIFICATE" || err != nil {
			return field.ErrorList{field.Invalid(st.Child("certificateChain"), "", "must be a chain of PEM-encoded certificates")}
		}
		if leaf == nil {
			leaf = c
		}
	}
	if leaf == nil {
		return field.ErrorList{field.Invalid(st.Child("certificateChain"), "", "must hold at least one PEM-encoded certificate")}
	}
	var errs field.ErrorList
	if csr, err := x509.ParseCertificateRequest(p.Spec.StubPKCS10Request); err == nil {
		if k, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(csr.PublicKey) {
			errs = append(errs, field.Invalid(st.Child("certificateChain"), "", "leaf certificate does not hold the requested public key"))
		}
	}
	for _, t := range []struct {
		name string
		got  interface{ IsZero() bool }
	}{{"notBefore", p.Status.NotBefore}, {"notAfter", p.Status.NotAfter}, {"beginRefreshAt", p.Status.BeginRefreshAt}} {
		if t.got == nil || t.got.IsZero() {
			errs = append(errs, field.Required(st.Child(t.name), "must be set when certificateChain is set"))
		}
	}
	if nb := p.Status.NotBefore; nb != nil && !nb.Time.Equal(leaf.NotBefore) {
		errs = append(errs, field.Invalid(st.Child("notBefore"), nb, "must match the leaf certificate's NotBefore"))
	}
	if na := p.Status.NotAfter; na != nil && !na.Time.Equal(leaf.NotAfter) {
		errs = append(errs, field.Invalid(st.Child("notAfter"), na, "must match the leaf certificate's NotAfter"))
	}
	return errs
}
