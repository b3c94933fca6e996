// Package csrsigning approves node certificate requests that a joining or
// renewing node may make, and signs approved requests for the built-in
// kubelet and client signers with the cluster CA.
package csrsigning

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/skiff-sh/skiff/internal/work"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	certlisters "k8s.io/client-go/listers/certificates/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/skiff-sh/skiff/internal/controller"
	"github.com/skiff-sh/skiff/internal/pki"
)

// Controller approves and signs CertificateSigningRequests.
type Controller struct {
	client kubernetes.Interface
	ca     *pki.CA
	csrs   certlisters.CertificateSigningRequestLister
	nodes  corelisters.NodeLister
	synced []cache.InformerSynced
	queue  workqueue.TypedRateLimitingInterface[string]
	log    *slog.Logger
}

// New registers the controller; without the CA's key it cannot sign and
// refuses to start.
func New(cc *controller.Context) (controller.Controller, error) {
	if cc.CA == nil {
		return nil, fmt.Errorf("csrsigning: no cluster CA key")
	}
	inf := cc.Informers.Certificates().V1().CertificateSigningRequests()
	nodes := cc.Informers.Core().V1().Nodes()
	c := &Controller{
		client: cc.Client, ca: cc.CA, csrs: inf.Lister(), nodes: nodes.Lister(), synced: []cache.InformerSynced{inf.Informer().HasSynced, nodes.Informer().HasSynced},
		queue: work.NewQueue[string]("csrsigning"), log: cc.Log.With("controller", "csrsigning"),
	}
	enqueue := func(obj any) {
		if csr, ok := obj.(*certificatesv1.CertificateSigningRequest); ok {
			c.queue.Add(csr.Name)
		}
	}
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }}); err != nil {
		return nil, err
	}
	return c, nil
}

// Run implements controller.Controller.
func (c *Controller) Run(ctx context.Context, workers int) {
	work.Serve(ctx, c.log, c.queue, workers, c.sync, c.synced...)
}

func (c *Controller) sync(ctx context.Context, name string) error {
	csr, err := c.csrs.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(csr.Status.Certificate) > 0 || has(csr, certificatesv1.CertificateDenied) || has(csr, certificatesv1.CertificateFailed) {
		return nil
	}
	if !has(csr, certificatesv1.CertificateApproved) {
		d, ok := autoApprove(csr)
		if !ok {
			return nil // left for an administrator: kubectl certificate approve
		}
		// A machine joining with the shared token may not take the name
		// of a node that is registered and Ready: that one holds it.
		if d.bootstrap {
			if n, err := c.nodes.Get(d.node); err == nil && nodeReady(n) {
				return c.decide(ctx, csr, certificatesv1.CertificateDenied, "NodeNameInUse", fmt.Sprintf("node %q is registered and Ready; a joining machine may not take its name", d.node))
			}
		}
		// As upstream's approver: only a requester RBAC lets create the
		// nodeclient (or selfnodeclient) subresource is approved, so
		// removing that binding turns auto-approval off.
		if d.subresource != "" {
			allowed, err := c.mayRequest(ctx, csr, d.subresource)
			if err != nil || !allowed {
				return err
			}
		}
		return c.decide(ctx, csr, certificatesv1.CertificateApproved, "AutoApproved", d.message) // the update brings it back here to be signed
	}
	usage, ext, ok := signerUsages(csr.Spec.SignerName)
	if !ok {
		return nil // another signer's request
	}
	ttl := time.Duration(0)
	if csr.Spec.ExpirationSeconds != nil {
		ttl = time.Duration(*csr.Spec.ExpirationSeconds) * time.Second
	}
	next := csr.DeepCopy()
	cert, err := c.ca.SignRequest(csr.Spec.Request, usage, ext, ttl)
	if err != nil {
		next.Status.Conditions = append(next.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
			Type: certificatesv1.CertificateFailed, Status: corev1.ConditionTrue, Reason: "SigningError", Message: err.Error(),
			LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(),
		})
	} else {
		next.Status.Certificate = cert
	}
	_, err = c.client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, next, metav1.UpdateOptions{})
	return err
}

func has(csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == t && c.Status != corev1.ConditionFalse {
			return true
		}
	}
	return false
}

// signerUsages are the key and extended usages of certificates the
// built-in signers issue.
func signerUsages(signer string) (x509.KeyUsage, []x509.ExtKeyUsage, bool) {
	ku := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	switch signer {
	case certificatesv1.KubeAPIServerClientKubeletSignerName, certificatesv1.KubeAPIServerClientSignerName:
		return ku, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, true
	case certificatesv1.KubeletServingSignerName:
		return ku, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, true
	}
	return 0, nil, false
}

// approval is autoApprove's verdict on a request.
type approval struct {
	node    string
	message string
	// bootstrap: asked with the join token (not by the node itself).
	bootstrap bool
	// subresource is the create permission the requester needs
	// (nodeclient, selfnodeclient; "" for none).
	subresource string
}

// autoApprove decides whether a request is one a node is entitled to: a
// client certificate for system:node:<name> asked by a bootstrap token or
// by that node itself, or that node's serving certificate asked by the
// node. Everything else waits for an administrator.
func autoApprove(csr *certificatesv1.CertificateSigningRequest) (approval, bool) {
	req, err := parse(csr.Spec.Request)
	if err != nil {
		return approval{}, false
	}
	node, isNode := strings.CutPrefix(req.Subject.CommonName, "system:node:")
	if !isNode || node == "" || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
		return approval{}, false
	}
	byBootstrap := slices.Contains(csr.Spec.Groups, "system:bootstrappers")
	bySelf := csr.Spec.Username == req.Subject.CommonName
	switch csr.Spec.SignerName {
	case certificatesv1.KubeAPIServerClientKubeletSignerName:
		if len(req.DNSNames)+len(req.IPAddresses)+len(req.EmailAddresses)+len(req.URIs) > 0 || !usagesWithin(csr.Spec.Usages, certificatesv1.UsageClientAuth) {
			return approval{}, false
		}
		if bySelf {
			return approval{node: node, message: "Auto approving self kubelet client certificate after SubjectAccessReview.", subresource: "selfnodeclient"}, true
		}
		if byBootstrap {
			return approval{node: node, message: "Auto approving kubelet client certificate after SubjectAccessReview.", bootstrap: true, subresource: "nodeclient"}, true
		}
	case certificatesv1.KubeletServingSignerName:
		if bySelf && len(req.EmailAddresses)+len(req.URIs) == 0 && usagesWithin(csr.Spec.Usages, certificatesv1.UsageServerAuth) {
			return approval{node: node, message: "Auto approving kubelet serving certificate requested by the node itself."}, true
		}
	}
	return approval{}, false
}

// mayRequest asks the API whether the requester may create the
// certificatesigningrequests subresource (a SubjectAccessReview).
func (c *Controller) mayRequest(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, subresource string) (bool, error) {
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range csr.Spec.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := c.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: csr.Spec.Username, UID: csr.Spec.UID, Groups: csr.Spec.Groups, Extra: extra,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Group: certificatesv1.GroupName, Resource: "certificatesigningrequests", Subresource: subresource, Verb: "create"},
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return sar.Status.Allowed, nil
}

// decide adds an Approved or Denied condition through the approval
// subresource.
func (c *Controller) decide(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, t certificatesv1.RequestConditionType, reason, msg string) error {
	next := csr.DeepCopy()
	next.Status.Conditions = append(next.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(),
	})
	_, err := c.client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, next, metav1.UpdateOptions{})
	return err
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// usagesWithin allows digital signature, key encipherment and the one
// extended usage.
func usagesWithin(usages []certificatesv1.KeyUsage, ext certificatesv1.KeyUsage) bool {
	for _, u := range usages {
		switch u {
		case certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, ext:
		default:
			return false
		}
	}
	return slices.Contains(usages, ext)
}

func parse(p []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(p)
	if block == nil {
		return nil, fmt.Errorf("no PEM block")
	}
	return x509.ParseCertificateRequest(block.Bytes)
}
