package registry

import (
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
)

// TestApprovalPart: certificatesigningrequests/approval writes conditions
// only, under upstream's rules.
func TestApprovalPart(t *testing.T) {
	cond := func(typ certificatesv1.RequestConditionType, st corev1.ConditionStatus) certificatesv1.CertificateSigningRequestCondition {
		return certificatesv1.CertificateSigningRequestCondition{Type: typ, Status: st}
	}
	stored := &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{SignerName: "example.com/s", Username: "alice"},
		Status: certificatesv1.CertificateSigningRequestStatus{Certificate: []byte("CERT")}}
	approved := stored.DeepCopy()
	approved.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateApproved, corev1.ConditionTrue)}
	cases := []struct {
		name   string
		cur    *certificatesv1.CertificateSigningRequest
		conds  []certificatesv1.CertificateSigningRequestCondition
		errSub string
	}{
		{"approve", stored, []certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateApproved, corev1.ConditionTrue)}, ""},
		{"deny", stored, []certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateDenied, corev1.ConditionTrue)}, ""},
		{"approved False", stored, []certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateApproved, corev1.ConditionFalse)}, `Unsupported value: "False"`},
		{"both", stored, []certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateApproved, corev1.ConditionTrue), cond(certificatesv1.CertificateDenied, corev1.ConditionTrue)}, "mutually exclusive"},
		{"twice", stored, []certificatesv1.CertificateSigningRequestCondition{cond(certificatesv1.CertificateApproved, corev1.ConditionTrue), cond(certificatesv1.CertificateApproved, corev1.ConditionTrue)}, "Duplicate value"},
		{"no type", stored, []certificatesv1.CertificateSigningRequestCondition{cond("", corev1.ConditionTrue)}, "Required value"},
		{"withdrawn", approved, nil, `may not remove a condition of type "Approved"`},
	}
	for _, c := range cases {
		req := c.cur.DeepCopy()
		req.Spec.Username = "mallory"
		req.Status.Certificate = []byte("FORGED")
		req.Status.Conditions = c.conds
		req.Annotations = map[string]string{"patched": "yes"}
		next, errs := approvalPart(req, c.cur)
		if got := errs.ToAggregate(); (got == nil) != (c.errSub == "") || (got != nil && !strings.Contains(got.Error(), c.errSub)) {
			t.Errorf("%s: errors %v, want %q", c.name, got, c.errSub)
			continue
		}
		csr := next.(*certificatesv1.CertificateSigningRequest)
		if csr.Spec.Username != "alice" || string(csr.Status.Certificate) != "CERT" || csr.Annotations["patched"] != "yes" {
			t.Errorf("%s: the approval changed more than conditions: %+v", c.name, csr)
		}
		if c.errSub == "" && (len(csr.Status.Conditions) != len(c.conds) || csr.Status.Conditions[0].LastUpdateTime.IsZero()) {
			t.Errorf("%s: conditions %+v", c.name, csr.Status.Conditions)
		}
	}
}

// TestFinalizePart: namespaces/finalize writes spec.finalizers only.
func TestFinalizePart(t *testing.T) {
	stored := &corev1.Namespace{Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}
	stored.Labels = map[string]string{"a": "b"}
	req := stored.DeepCopy()
	req.Spec.Finalizers = nil
	req.Labels = map[string]string{"a": "changed"}
	req.Status.Phase = corev1.NamespaceActive
	next, errs := finalizePart(req, stored)
	ns := next.(*corev1.Namespace)
	if len(errs) > 0 || len(ns.Spec.Finalizers) != 0 || ns.Labels["a"] != "b" || ns.Status.Phase != corev1.NamespaceTerminating {
		t.Fatalf("finalize: %v %+v", errs, ns)
	}
	req.Spec.Finalizers = []corev1.FinalizerName{"not a name!"}
	if _, errs := finalizePart(req, stored); len(errs) == 0 {
		t.Error("an invalid finalizer name was accepted")
	}
}
