package registry

import (
	"context"
	"encoding/pem"
	"strings"
	"time"

	"github.com/skiff-sh/skiff/internal/auth"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
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
	r.Approval = true
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
