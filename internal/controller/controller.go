// Package controller runs skiff's controllers: level-triggered loops over
// shared informers, each draining a rate-limited work queue, started once
// this server holds the controller-manager Lease.
package controller

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/skiff-sh/skiff/internal/pki"
	"github.com/skiff-sh/skiff/internal/satoken"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"
)

// Context is what every controller is built from: clients, the process's
// one informer factory (and its metadata-only twin), events, time, logs.
type Context struct {
	// Client and Metadata write as the controller's own ServiceAccount
	// (or as the controller manager, for a controller without one).
	Client   kubernetes.Interface
	Metadata metadata.Interface
	// InformerClient lists and watches as the controller manager, as the
	// shared informer factories do, for a controller's own informers.
	InformerClient    kubernetes.Interface
	Informers         informers.SharedInformerFactory
	MetadataInformers metadatainformer.SharedInformerFactory
	Events            record.EventBroadcaster
	Clock             clock.WithTicker
	Log               *slog.Logger
	// RootCA is the cluster CA certificate (PEM) published in every
	// namespace as the kube-root-ca.crt ConfigMap.
	RootCA []byte
	// CA signs certificates (nil when the server has no CA key).
	CA *pki.CA
	// TokenKey signs the tokens of ServiceAccount token Secrets (nil:
	// none are filled).
	TokenKey *satoken.Key
	Settings Settings
}

// Settings are the controllers' tunables (server flags).
type Settings struct {
	// JobBackoff is the first delay before a Job replaces a failed pod.
	JobBackoff time.Duration
	// TerminatedPodThreshold is how many finished pods are kept.
	TerminatedPodThreshold int
	// NodeGracePeriod is how long a node may be silent before it is
	// marked Unknown and tainted unreachable.
	NodeGracePeriod time.Duration
	// NodeEvictionRate bounds how many nodes per second get NoExecute taints.
	NodeEvictionRate float64
	// ClusterCIDR is the pod range the node IPAM controller splits into
	// per-node subnets of NodeCIDRMaskSize bits.
	ClusterCIDR      string
	NodeCIDRMaskSize int
}

// Recorder returns an event recorder that reports as component.
func (c *Context) Recorder(component string) record.EventRecorder {
	return c.Events.NewRecorder(eventScheme(), corev1.EventSource{Component: component})
}

// Controller is one reconcile loop. Run blocks until ctx ends; it starts its
// workers only after the informers it reads from have synced.
type Controller interface {
	Run(ctx context.Context, workers int)
}

// Factory builds a controller from the shared context.
type Factory func(*Context) (Controller, error)

// Registration names a controller, says how many workers it gets and whose
// credentials it writes with.
type Registration struct {
	Name    string
	New     Factory
	Workers int
	// ServiceAccount is the controller's account in kube-system (bound to
	// the ClusterRole system:controller:<account>); empty runs it as the
	// controller manager itself, as upstream does for the token
	// controller, which makes credentials.
	ServiceAccount string
}

// Select picks the registrations a --controllers list enables, with
// upstream's syntax: "*" is every controller, "name" enables one, "-name"
// disables one. An empty list enables none.
func Select(all []Registration, spec []string) ([]Registration, error) {
	known := map[string]bool{}
	for _, r := range all {
		known[r.Name] = true
	}
	star := false
	on, off := map[string]bool{}, map[string]bool{}
	for _, s := range spec {
		switch {
		case s == "*":
			star = true
		case len(s) > 1 && s[0] == '-':
			if !known[s[1:]] {
				return nil, fmt.Errorf("--controllers: unknown controller %q", s[1:])
			}
			off[s[1:]] = true
		case s != "":
			if !known[s] {
				return nil, fmt.Errorf("--controllers: unknown controller %q", s)
			}
			on[s] = true
		}
	}
	var out []Registration
	for _, r := range all {
		if (star || on[r.Name]) && !off[r.Name] {
			out = append(out, r)
		}
	}
	return out, nil
}

// Names lists registration names, for flag help.
func Names(all []Registration) []string {
	var out []string
	for _, r := range all {
		out = append(out, r.Name)
	}
	return slices.Sorted(slices.Values(out))
}
