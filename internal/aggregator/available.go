package aggregator

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Observed is what the availability of a remote APIService is decided
// from: its Service (nil: not found), that Service's EndpointSlices, and
// the outcome of asking the server for the group-version's discovery
// (ProbeErr; only consulted once the Service checks pass).
type Observed struct {
	Service  *corev1.Service
	Slices   []*discoveryv1.EndpointSlice
	ProbeErr error
}

// NeedsProbe reports whether the Service checks pass, so that the server
// itself should be asked (the caller probes only then).
func NeedsProbe(a *APIService, o Observed) bool {
	c := decideService(a, o)
	return c == nil
}

// Decide is the Available condition of a remote APIService, with
// upstream's reasons and messages, in the order upstream checks: the
// Service exists, a ClusterIP Service has the port and a ready endpoint
// for it, and the server answers discovery for the group-version.
func Decide(a *APIService, o Observed) Condition {
	if c := decideService(a, o); c != nil {
		return *c
	}
	if o.ProbeErr != nil {
		return Condition{Type: Available, Status: string(metav1.ConditionFalse), Reason: "FailedDiscoveryCheck", Message: o.ProbeErr.Error()}
	}
	return Condition{Type: Available, Status: string(metav1.ConditionTrue), Reason: "Passed", Message: "all checks passed"}
}

func decideService(a *APIService, o Observed) *Condition {
	ref := a.Spec.Service
	unavailable := func(reason, msg string) *Condition {
		return &Condition{Type: Available, Status: string(metav1.ConditionFalse), Reason: reason, Message: msg}
	}
	if o.Service == nil {
		return unavailable("ServiceNotFound", fmt.Sprintf("service/%s in %q is not present", ref.Name, ref.Namespace))
	}
	if o.Service.Spec.Type != corev1.ServiceTypeClusterIP && o.Service.Spec.Type != "" {
		// Other kinds of Service (ExternalName) are only probed.
		return nil
	}
	port := a.Port()
	portName, found := "", false
	for _, p := range o.Service.Spec.Ports {
		if p.Port == port {
			portName, found = p.Name, true
			break
		}
	}
	if !found {
		return unavailable("ServicePortError", fmt.Sprintf("service/%s in %q is not listening on port %d", ref.Name, ref.Namespace, port))
	}
	if len(o.Slices) == 0 {
		return unavailable("EndpointsNotFound", fmt.Sprintf("cannot find endpointslices for service/%s in %q", ref.Name, ref.Namespace))
	}
	if !hasReadyEndpoint(portName, o.Slices) {
		return unavailable("MissingEndpoints", fmt.Sprintf("endpointslices for service/%s in %q have no addresses with port name %q", ref.Name, ref.Namespace, portName))
	}
	return nil
}

// hasReadyEndpoint reports whether a slice has a ready address for the
// Service port named portName.
func hasReadyEndpoint(portName string, slices []*discoveryv1.EndpointSlice) bool {
	for _, s := range slices {
		named := false
		for _, p := range s.Ports {
			if p.Name != nil && *p.Name == portName || p.Name == nil && portName == "" {
				named = true
			}
		}
		if !named {
			continue
		}
		for _, ep := range s.Endpoints {
			if len(ep.Addresses) > 0 && (ep.Conditions.Ready == nil || *ep.Conditions.Ready) {
				return true
			}
		}
	}
	return false
}

// SetCondition puts c into conds, replacing the condition of its type
// (which keeps its transition time when the status stays) and keeping
// the others; changed reports whether anything differs.
func SetCondition(conds []Condition, c Condition, now metav1.Time) (out []Condition, changed bool) {
	for i, old := range conds {
		if old.Type != c.Type {
			continue
		}
		if old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message {
			return conds, false
		}
		c.LastTransitionTime = now
		if old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		}
		out = append([]Condition(nil), conds...)
		out[i] = c
		return out, true
	}
	c.LastTransitionTime = now
	return append(append([]Condition(nil), conds...), c), true
}
