package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-sh/skiff/internal/admission/webhook"
	"github.com/skiff-sh/skiff/internal/authz"
)

var (
	mutatingConfigsGVR   = admissionregistrationv1.SchemeGroupVersion.WithResource("mutatingwebhookconfigurations")
	validatingConfigsGVR = admissionregistrationv1.SchemeGroupVersion.WithResource("validatingwebhookconfigurations")
)

// webhooks is upstream's MutatingAdmissionWebhook (mutating true) or
// ValidatingAdmissionWebhook: every request a configured webhook's rules
// and selectors match is sent to it as an AdmissionReview. Mutating
// webhooks run one after another and patch the object; validating ones run
// at once and any may refuse. A webhook that cannot be called, or answers
// nonsense, fails the request under failurePolicy Fail and is passed over
// under Ignore. Changes to the configurations themselves (and to the
// policies) are never sent to webhooks, so a broken webhook cannot lock
// them.
type webhooks struct {
	objects  Objects
	client   *webhook.Client
	mutating bool
	// authorizer answers match conditions' authorizer checks.
	authorizer authz.Authorizer
}

func (w *webhooks) Handles(op Operation) bool {
	return op == Create || op == Update || op == Delete || (op == Connect && !w.mutating)
}

// Admit runs the mutating webhooks (creates and updates).
func (w *webhooks) Admit(ctx context.Context, a *Attributes) error {
	if !w.mutating || a.Operation == Delete {
		return nil
	}
	return w.dispatch(ctx, a)
}

// Validate runs the validating webhooks.
func (w *webhooks) Validate(ctx context.Context, a *Attributes) error {
	if w.mutating {
		return nil
	}
	return w.dispatch(ctx, a)
}

// exempt are the resources never sent to webhooks, as upstream.
func exempt(a *Attributes) bool {
	return a.Resource.Group == admissionregistrationv1.GroupName
}

// hooks lists the configured webhooks in upstream's order: configurations
// by name, webhooks in their configuration's order.
func (w *webhooks) hooks() []webhook.Hook {
	gvr := validatingConfigsGVR
	if w.mutating {
		gvr = mutatingConfigsGVR
	}
	objs := w.objects.List(gvr, "")
	slices.SortFunc(objs, func(x, y runtime.Object) int {
		return strings.Compare(x.(metav1.Object).GetName(), y.(metav1.Object).GetName())
	})
	var out []webhook.Hook
	for _, o := range objs {
		switch c := o.(type) {
		case *admissionregistrationv1.MutatingWebhookConfiguration:
			out = append(out, webhook.FromMutating(c)...)
		case *admissionregistrationv1.ValidatingWebhookConfiguration:
			out = append(out, webhook.FromValidating(c)...)
		}
	}
	return out
}

func (w *webhooks) dispatch(ctx context.Context, a *Attributes) error {
	if exempt(a) {
		return nil
	}
	hooks := w.hooks()
	if len(hooks) == 0 {
		return nil
	}
	req := matchRequest(ctx, w.objects, a)
	var matched []webhook.Hook
	var vars map[string]any
	for _, h := range hooks {
		if !webhook.Matches(h, req) {
			continue
		}
		if len(h.MatchConditions) > 0 {
			if vars == nil {
				vars = w.conditionVars(a)
			}
			ok, err := webhook.ConditionsMet(h.MatchConditions, vars)
			if err != nil {
				if ferr := failed(ctx, h, err); ferr != nil {
					return ferr
				}
				continue
			}
			if !ok {
				continue
			}
		}
		matched = append(matched, h)
	}
	if len(matched) == 0 {
		return nil
	}
	if w.mutating {
		return w.mutate(ctx, a, matched)
	}
	return w.validate(ctx, a, matched)
}

// matchRequest is what webhook and policy matching needs to know of a.
func matchRequest(ctx context.Context, objects Objects, a *Attributes) webhook.Request {
	r := webhook.Request{Operation: admissionregistrationv1.OperationType(a.Operation), Resource: a.Resource, Subresource: a.Subresource,
		Name: a.Name, Namespaced: a.Namespace != "", Namespace: a.Namespace}
	if a.Object != nil {
		r.HasObject = true
		if acc, err := meta.Accessor(a.Object); err == nil {
			r.ObjectLabels = acc.GetLabels()
		}
	}
	if a.OldObject != nil {
		r.HasOldObject = true
		if acc, err := meta.Accessor(a.OldObject); err == nil {
			r.OldObjectLabels = acc.GetLabels()
		}
	}
	switch {
	case a.Resource == namespacesGVR:
		r.NamespaceLabels = r.ObjectLabels
		if !r.HasObject {
			r.NamespaceLabels = r.OldObjectLabels
		}
	case a.Namespace != "":
		if ns, err := objects.Get(ctx, namespacesGVR, "", a.Namespace); err == nil {
			r.NamespaceLabels = ns.(*corev1.Namespace).Labels
		}
	}
	return r
}

// requestVars is the request as CEL expressions see it (match
// conditions, policies).
func requestVars(a *Attributes) map[string]any {
	kind := map[string]any{"group": a.Kind.Group, "version": a.Kind.Version, "kind": a.Kind.Kind}
	return map[string]any{
		"kind": kind, "requestKind": kind,
		"resource":    map[string]any{"group": a.Resource.Group, "version": a.Resource.Version, "resource": a.Resource.Resource},
		"subResource": a.Subresource, "name": a.Name, "namespace": a.Namespace, "operation": string(a.Operation), "dryRun": a.DryRun,
		"userInfo": map[string]any{"username": a.User.Name, "uid": a.User.UID, "groups": stringsAny(a.User.Groups)},
	}
}

// conditionVars are what match conditions see of a (the authorizer
// library's values too, when the server has an authorizer).
func (w *webhooks) conditionVars(a *Attributes) map[string]any {
	obj, _ := jsonForm(a.Object, a)
	old, _ := jsonForm(a.OldObject, a)
	vars := map[string]any{"object": obj, "oldObject": old, "request": requestVars(a)}
	if w.authorizer != nil {
		vars["authorizer"], vars["authorizer.requestResource"] = authorizerValues(w.authorizer, a)
	}
	return vars
}

// review builds the AdmissionRequest for a (objects in their JSON form).
func review(a *Attributes) (*admissionv1.AdmissionRequest, error) {
	gvk := metav1.GroupVersionKind{Group: a.Kind.Group, Version: a.Kind.Version, Kind: a.Kind.Kind}
	gvr := metav1.GroupVersionResource{Group: a.Resource.Group, Version: a.Resource.Version, Resource: a.Resource.Resource}
	dry := a.DryRun
	req := &admissionv1.AdmissionRequest{
		UID: types.UID(uuid.NewString()), Kind: gvk, Resource: gvr, SubResource: a.Subresource,
		RequestKind: &gvk, RequestResource: &gvr, RequestSubResource: a.Subresource,
		Name: a.Name, Namespace: a.Namespace, Operation: admissionv1.Operation(a.Operation), DryRun: &dry,
		UserInfo: authenticationv1.UserInfo{Username: a.User.Name, UID: a.User.UID, Groups: a.User.Groups, Extra: extra(a.User.Extra)},
	}
	var err error
	if req.Object.Raw, err = encodeObject(a.Object, a); err != nil {
		return nil, err
	}
	if req.OldObject.Raw, err = encodeObject(a.OldObject, a); err != nil {
		return nil, err
	}
	// A CONNECT's object is its options (PodExecOptions, ...), as upstream
	// sends it; the others carry their operation's options.
	if a.Operation != Connect {
		opts := map[Operation]string{Create: "CreateOptions", Update: "UpdateOptions", Delete: "DeleteOptions"}[a.Operation]
		req.Options.Raw, _ = json.Marshal(map[string]string{"apiVersion": "meta.k8s.io/v1", "kind": opts})
	}
	return req, nil
}

func extra(in map[string][]string) map[string]authenticationv1.ExtraValue {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]authenticationv1.ExtraValue, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// encodeObject is obj's JSON form, with its apiVersion and kind.
func encodeObject(obj runtime.Object, a *Attributes) ([]byte, error) {
	if obj == nil || reflect.ValueOf(obj).IsNil() {
		return nil, nil
	}
	c := obj.DeepCopyObject()
	c.GetObjectKind().SetGroupVersionKind(a.Kind)
	return json.Marshal(c)
}

// call sends one review and reads the answer; an error is a failure to
// call (the failure policy decides), not a refusal.
func (w *webhooks) call(ctx context.Context, h webhook.Hook, req *admissionv1.AdmissionRequest) (webhook.Answer, error) {
	version, err := webhook.ReviewVersion(h)
	if err != nil {
		return webhook.Answer{}, err
	}
	body, err := webhook.EncodeReview(version, req)
	if err != nil {
		return webhook.Answer{}, err
	}
	timeout := time.Duration(h.TimeoutSeconds) * time.Second
	out, err := w.client.Post(ctx, h.ClientConfig, timeout, body)
	if err != nil {
		return webhook.Answer{}, err
	}
	return webhook.ReadAnswer(out, version, req.UID, h.Mutating)
}

// failed applies the failure policy to a webhook that could not be called.
func failed(ctx context.Context, h webhook.Hook, err error) error {
	if h.FailurePolicy == admissionregistrationv1.Ignore {
		Annotate(ctx, "failed-open."+admissionKind(h)+".k8s.io/round_0_index_0", h.Name)
		return nil
	}
	return apierrors.NewInternalError(fmt.Errorf("failed calling webhook %q: %w", h.Name, err))
}

func admissionKind(h webhook.Hook) string {
	if h.Mutating {
		return "mutation.webhook.admission"
	}
	return "validating.webhook.admission"
}

// answered passes an answer's warnings and audit annotations on, and turns
// a refusal into upstream's error.
func answered(ctx context.Context, h webhook.Hook, ans webhook.Answer) error {
	for _, warn := range ans.Warnings {
		Warn(ctx, warn)
	}
	for k, v := range ans.AuditAnnotations {
		Annotate(ctx, h.Configuration+"/"+k, v)
	}
	if !ans.Allowed {
		return &apierrors.StatusError{ErrStatus: *webhook.Denied(h.Name, ans.Result)}
	}
	return nil
}

// mutate calls the matching mutating webhooks in order, applying each
// patch to the object; those asking to be reinvoked are called once more
// when a later webhook changed the object.
func (w *webhooks) mutate(ctx context.Context, a *Attributes, hooks []webhook.Hook) error {
	changedAt := -1 // index of the last webhook that changed the object
	runOne := func(i int, h webhook.Hook) error {
		req, err := review(a)
		if err != nil {
			return apierrors.NewInternalError(err)
		}
		ans, err := w.call(ctx, h, req)
		if err != nil {
			return failed(ctx, h, err)
		}
		if err := answered(ctx, h, ans); err != nil {
			return err
		}
		if len(ans.Patch) == 0 {
			return nil
		}
		changed, err := applyPatch(a, req.Object.Raw, ans.Patch)
		if err != nil {
			return failed(ctx, h, err)
		}
		if changed {
			changedAt = i
		}
		return nil
	}
	for i, h := range hooks {
		if err := runOne(i, h); err != nil {
			return err
		}
	}
	last := changedAt
	for i, h := range hooks {
		if h.Reinvoke && i < last {
			if err := runOne(len(hooks)+i, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyPatch applies a webhook's JSON patch to a's object in place; it
// reports whether the object changed.
func applyPatch(a *Attributes, doc, patch []byte) (bool, error) {
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return false, fmt.Errorf("decode the webhook's patch: %w", err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		return false, fmt.Errorf("apply the webhook's patch: %w", err)
	}
	if string(out) == string(doc) {
		return false, nil
	}
	switch obj := a.Object.(type) {
	case *unstructured.Unstructured:
		next := &unstructured.Unstructured{}
		if err := next.UnmarshalJSON(out); err != nil {
			return false, fmt.Errorf("decode the patched object: %w", err)
		}
		obj.Object = next.Object
	default:
		v := reflect.New(reflect.TypeOf(a.Object).Elem())
		if err := json.Unmarshal(out, v.Interface()); err != nil {
			return false, fmt.Errorf("decode the patched object: %w", err)
		}
		reflect.ValueOf(a.Object).Elem().Set(v.Elem())
	}
	a.Mutated = true
	return true, nil
}

// validate calls the matching validating webhooks at once; the first
// refusal or failure in their order is the request's.
func (w *webhooks) validate(ctx context.Context, a *Attributes, hooks []webhook.Hook) error {
	req, err := review(a)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	errs := make([]error, len(hooks))
	var wg sync.WaitGroup
	for i, h := range hooks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ans, err := w.call(ctx, h, req)
			if err != nil {
				errs[i] = failed(ctx, h, err)
				return
			}
			errs[i] = answered(ctx, h, ans)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
