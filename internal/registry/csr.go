package registry

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/internal/auth"
	"github.com/skiff-sh/skiff/internal/authz"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// csrStrategy serves certificates.k8s.io/v1 CertificateSigningRequests:
// a PEM request, a signer name and usages; status (approval conditions and
// the issued certificate) through status and approval.
func csrStrategy(r *Resource) {
	r.ShortNames = []string{"csr"}
	r.Fields = asFields(func(o *certificatesv1.CertificateSigningRequest) fields.Set {
		return fields.Set{"spec.signerName": o.Spec.SignerName}
	})
	r.Status = true
	r.Parts = map[string]Part{"approval": {Take: approvalPart}}
	r.Guard = guardCSR
	r.OnCreate = func(ctx context.Context, o runtime.Object, _ bool) error {
		// The requester is whoever created it, never what the body claims.
		c := o.(*certificatesv1.CertificateSigningRequest)
		u, _ := auth.UserFrom(ctx)
		c.Spec.Username, c.Spec.UID, c.Spec.Groups = u.Name, u.UID, u.Groups
		return nil
	}
	r.Validate = asValidate(func(c *certificatesv1.CertificateSigningRequest) field.ErrorList {
		var errs field.ErrorList
		spec := field.NewPath("spec")
		if block, _ := pem.Decode(c.Spec.Request); block == nil || block.Type != "CERTIFICATE REQUEST" {
			errs = append(errs, field.Invalid(spec.Child("request"), "", "must be a PEM-encoded CERTIFICATE REQUEST"))
		}
		if c.Spec.SignerName == "" {
			errs = append(errs, field.Required(spec.Child("signerName"), ""))
		} else if !strings.Contains(c.Spec.SignerName, "/") {
			errs = append(errs, field.Invalid(spec.Child("signerName"), c.Spec.SignerName, "must be a fully qualified domain and path of the form 'example.com/signer-name'"))
		}
		if len(c.Spec.Usages) == 0 {
			errs = append(errs, field.Required(spec.Child("usages"), ""))
		}
		return errs
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, ageCol, col("SignerName", "string", 0, ""), col("Requestor", "string", 0, ""), col("RequestedDuration", "string", 0, ""), col("Condition", "string", 0, "")}
	r.Row = asRow(func(c *certificatesv1.CertificateSigningRequest, _ bool) []any {
		var conds []string
		for _, cond := range c.Status.Conditions {
			if cond.Status == corev1.ConditionTrue || cond.Status == "" {
				conds = append(conds, string(cond.Type))
			}
		}
		if len(c.Status.Certificate) > 0 {
			conds = append(conds, "Issued")
		}
		condition := "Pending"
		if len(conds) > 0 {
			condition = strings.Join(conds, ",")
		}
		dur := "<none>"
		if c.Spec.ExpirationSeconds != nil {
			dur = (time.Duration(*c.Spec.ExpirationSeconds) * time.Second).String()
		}
		return []any{c.Name, age(c.CreationTimestamp), c.Spec.SignerName, c.Spec.Username, dur, condition}
	})
}

// approvalPart is certificatesigningrequests/approval: it writes the
// conditions and metadata (the certificate and the spec stay the stored
// ones), as
// upstream's approval strategy, with its rules: Approved and Denied are
// True if present, exclusive, not repeated, and never withdrawn.
func approvalPart(req, cur runtime.Object) (runtime.Object, field.ErrorList) {
	in, old := req.(*certificatesv1.CertificateSigningRequest), cur.(*certificatesv1.CertificateSigningRequest)
	// The request's metadata (annotations, labels) applies, as upstream's
	// approval strategy keeps it; the spec and the certificate stay.
	next := in.DeepCopy()
	next.Spec = *old.Spec.DeepCopy()
	next.Status.Certificate = old.Status.Certificate
	now := metav1.Now()
	var errs field.ErrorList
	p := field.NewPath("status", "conditions")
	seen := map[certificatesv1.RequestConditionType]bool{}
	for i := range next.Status.Conditions {
		c := &next.Status.Conditions[i]
		cp := p.Index(i)
		if c.LastUpdateTime.IsZero() {
			c.LastUpdateTime = now
		}
		if c.LastTransitionTime.IsZero() {
			c.LastTransitionTime = now
		}
		switch {
		case c.Type == "":
			errs = append(errs, field.Required(cp.Child("type"), ""))
			continue
		case c.Status == "":
			errs = append(errs, field.Required(cp.Child("status"), ""))
		case c.Status != corev1.ConditionTrue && c.Status != corev1.ConditionFalse && c.Status != corev1.ConditionUnknown:
			errs = append(errs, field.NotSupported(cp.Child("status"), c.Status, []string{string(corev1.ConditionTrue), string(corev1.ConditionFalse), string(corev1.ConditionUnknown)}))
		}
		switch c.Type {
		case certificatesv1.CertificateApproved, certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
			if c.Status != "" && c.Status != corev1.ConditionTrue {
				errs = append(errs, field.NotSupported(cp.Child("status"), c.Status, []string{string(corev1.ConditionTrue)}))
			}
			if seen[c.Type] {
				errs = append(errs, field.Duplicate(cp.Child("type"), c.Type))
			}
		}
		seen[c.Type] = true
	}
	if seen[certificatesv1.CertificateApproved] && seen[certificatesv1.CertificateDenied] {
		errs = append(errs, field.Invalid(p, certificatesv1.CertificateDenied, "Approved and Denied conditions are mutually exclusive"))
	}
	for _, c := range old.Status.Conditions {
		if (c.Type == certificatesv1.CertificateApproved || c.Type == certificatesv1.CertificateDenied) && !seen[c.Type] {
			errs = append(errs, field.Forbidden(p, fmt.Sprintf("updates may not remove a condition of type %q", c.Type)))
		}
	}
	return next, errs
}

// guardCSR is upstream's certificate admission: no client certificate for
// system:masters through the kube-apiserver-client signer
// (CertificateSubjectRestriction, for everyone); an approval or denial only
// by a user who may "approve" the request's signer (CertificateApproval),
// an issued certificate only by one who may "sign" it
// (CertificateSigning). The signer is checked by name and as "domain/*".
func guardCSR(ctx context.Context, g *Registry, obj, old runtime.Object) error {
	c := obj.(*certificatesv1.CertificateSigningRequest)
	gr := certificatesv1.Resource("certificatesigningrequests")
	if old == nil {
		if c.Spec.SignerName == certificatesv1.KubeAPIServerClientSignerName {
			if block, _ := pem.Decode(c.Spec.Request); block != nil {
				if req, err := x509.ParseCertificateRequest(block.Bytes); err == nil && slices.Contains(req.Subject.Organization, authz.Masters) {
					return apierrors.NewForbidden(gr, c.Name, fmt.Errorf("use of %s signer with %s group is not allowed", c.Spec.SignerName, authz.Masters))
				}
			}
		}
		return nil
	}
	u, ok := privileged(ctx)
	if ok {
		return nil
	}
	prev := old.(*certificatesv1.CertificateSigningRequest)
	signer := func(verb string) bool {
		domain, _, _ := strings.Cut(c.Spec.SignerName, "/")
		return may(g, u, verb, certificatesv1.GroupName, "signers", "", c.Spec.SignerName) || may(g, u, verb, certificatesv1.GroupName, "signers", "", domain+"/*")
	}
	if decided(c) != decided(prev) && !signer("approve") {
		return apierrors.NewForbidden(gr, c.Name, fmt.Errorf("user not permitted to approve requests with signerName %q", c.Spec.SignerName))
	}
	if string(c.Status.Certificate) != string(prev.Status.Certificate) && !signer("sign") {
		return apierrors.NewForbidden(gr, c.Name, fmt.Errorf("user not permitted to sign requests with signerName %q", c.Spec.SignerName))
	}
	return nil
}

// decided is a request's approval state: its Approved and Denied
// conditions.
func decided(c *certificatesv1.CertificateSigningRequest) string {
	var out []string
	for _, cond := range c.Status.Conditions {
		if cond.Type == certificatesv1.CertificateApproved || cond.Type == certificatesv1.CertificateDenied {
			out = append(out, string(cond.Type)+"="+string(cond.Status))
		}
	}
	return strings.Join(out, ",")
}
