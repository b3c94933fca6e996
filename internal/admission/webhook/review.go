package webhook

import (
	"encoding/json"
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ReviewVersion picks the AdmissionReview version to send: the first of
// the webhook's list skiff speaks (v1, or v1beta1 whose shape is the same).
func ReviewVersion(h Hook) (string, error) {
	for _, v := range h.ReviewVersions {
		if v == "v1" || v == "v1beta1" {
			return v, nil
		}
	}
	return "", fmt.Errorf("webhook does not accept v1 or v1beta1 AdmissionReview")
}

// EncodeReview is the body sent to a webhook.
func EncodeReview(version string, req *admissionv1.AdmissionRequest) ([]byte, error) {
	return json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/" + version, Kind: "AdmissionReview"},
		Request:  req,
	})
}

// Answer is what a webhook said of a request.
type Answer struct {
	Allowed bool
	// Result is the webhook's status for a refusal (may be nil).
	Result *metav1.Status
	// Patch is a JSON patch to the object (mutating webhooks only).
	Patch            []byte
	Warnings         []string
	AuditAnnotations map[string]string
}

// ReadAnswer checks a webhook's reply as upstream does: an AdmissionReview
// of the version sent, answering this request's uid, with a patch only
// from a mutating webhook and only as a JSON patch.
func ReadAnswer(body []byte, version string, uid types.UID, mutating bool) (Answer, error) {
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return Answer{}, fmt.Errorf("received invalid webhook response: %w", err)
	}
	if review.APIVersion != "admission.k8s.io/"+version || review.Kind != "AdmissionReview" {
		return Answer{}, fmt.Errorf("expected webhook response of admission.k8s.io/%s, Kind=AdmissionReview, got %s, Kind=%s", version, review.APIVersion, review.Kind)
	}
	resp := review.Response
	if resp == nil {
		return Answer{}, fmt.Errorf("webhook response was absent")
	}
	if resp.UID != uid {
		return Answer{}, fmt.Errorf("expected response.uid=%q, got %q", uid, resp.UID)
	}
	a := Answer{Allowed: resp.Allowed, Result: resp.Result, Warnings: resp.Warnings, AuditAnnotations: resp.AuditAnnotations}
	if len(resp.Patch) > 0 {
		if !mutating {
			return Answer{}, fmt.Errorf("validating webhook may not return a patch")
		}
		if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
			return Answer{}, fmt.Errorf("expected patchType JSONPatch, got %v", resp.PatchType)
		}
		a.Patch = resp.Patch
	}
	return a, nil
}

// Denied is upstream's error for a webhook's refusal: "admission webhook
// %q denied the request: <message>", with the webhook's code (at least
// 400).
func Denied(name string, result *metav1.Status) *metav1.Status {
	st := metav1.Status{Status: metav1.StatusFailure}
	if result != nil {
		st = *result.DeepCopy()
	}
	if st.Code < http.StatusBadRequest {
		st.Code = http.StatusBadRequest
	}
	if st.Status == "" || st.Status == metav1.StatusSuccess {
		st.Status = metav1.StatusFailure
	}
	deniedBy := fmt.Sprintf("admission webhook %q denied the request", name)
	switch {
	case st.Message != "":
		st.Message = deniedBy + ": " + st.Message
	case st.Reason != "":
		st.Message = deniedBy + ": " + string(st.Reason)
	default:
		st.Message = deniedBy + " without explanation"
	}
	return &st
}
