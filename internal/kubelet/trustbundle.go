package kubelet

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"os"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-sh/skiff/internal/kubelet/volume"
)

// trustBundleFile writes a clusterTrustBundle projection: the bundle of
// that name, or the union of every bundle of the signer whose labels match
// the selector (a nil selector matches none), as one PEM file. With
// optional set, nothing found is an empty file; otherwise it fails the
// volume, as upstream's kubelet does.
func (k *Kubelet) trustBundleFile(ctx context.Context, p *v1.ClusterTrustBundleProjection, def os.FileMode, files map[string]volume.File) error {
	var bundles []string
	api := k.client.CertificatesV1().ClusterTrustBundles()
	switch {
	case p.Name != nil:
		b, err := api.Get(ctx, *p.Name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		if err == nil {
			bundles = append(bundles, b.Spec.TrustBundle)
		}
	case p.SignerName != nil:
		list, err := api.List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		bundles, err = signerBundles(list.Items, *p.SignerName, p.LabelSelector)
		if err != nil {
			return err
		}
	}
	if len(bundles) == 0 && !isOptional(p.Optional) {
		return fmt.Errorf("clusterTrustBundle projection to %s: no ClusterTrustBundle matched", p.Path)
	}
	files[p.Path] = volume.File{Data: pemUnion(bundles), Mode: def}
	return nil
}

// signerBundles are the bundles of signer whose labels sel matches.
func signerBundles(all []certificatesv1.ClusterTrustBundle, signer string, sel *metav1.LabelSelector) ([]string, error) {
	if sel == nil {
		return nil, nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("clusterTrustBundle label selector: %w", err)
	}
	var out []string
	for _, b := range all {
		if b.Spec.SignerName == signer && s.Matches(labels.Set(b.Labels)) {
			out = append(out, b.Spec.TrustBundle)
		}
	}
	return out, nil
}

// pemUnion is every certificate of the bundles once, in first-seen order.
func pemUnion(bundles []string) []byte {
	var out bytes.Buffer
	seen := map[string]bool{}
	for _, b := range bundles {
		rest := []byte(b)
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" || seen[string(block.Bytes)] {
				continue
			}
			seen[string(block.Bytes)] = true
			_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes})
		}
	}
	return out.Bytes()
}
