package registry

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/skiff-sh/skiff/internal/podspec"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

var serviceTypes = sets.New(corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName)

func serviceStrategy(r *Resource) {
	r.ShortNames = []string{"svc"}
	r.Categories = []string{"all"}
	r.Status = true
	r.NameFn = apivalidation.NameIsDNS1035Label
	r.Default = asDefault(func(o *corev1.Service) { defaultService(o) })
	r.Validate = asValidate(func(o *corev1.Service) field.ErrorList { return validateService(o) })
	r.ValidateUpdate = asValidateUpdate(func(s, os *corev1.Service) field.ErrorList {
		errs := validateService(s)
		if os.Spec.ClusterIP != "" && s.Spec.Type != corev1.ServiceTypeExternalName && os.Spec.Type != corev1.ServiceTypeExternalName && s.Spec.ClusterIP != os.Spec.ClusterIP {
			errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), s.Spec.ClusterIP, "may not change once set"))
		}
		return errs
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Type", "string", 0, "type determines how the Service is exposed."), col("Cluster-IP", "string", 0, "clusterIP is the IP address of the service."),
		col("External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."), col("Port(s)", "string", 0, "The list of ports that are exposed by this service."), ageCol, col("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector.")}
	r.Row = serviceRow
	r.Fields = asFields(func(s *corev1.Service) fields.Set {
		return fields.Set{"spec.clusterIP": s.Spec.ClusterIP, "spec.type": string(s.Spec.Type)}
	})
}

func defaultService(s *corev1.Service) {
	if s.Spec.Type == "" {
		s.Spec.Type = corev1.ServiceTypeClusterIP
	}
	if s.Spec.SessionAffinity == "" {
		s.Spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	if s.Spec.SessionAffinity == corev1.ServiceAffinityClientIP && s.Spec.SessionAffinityConfig == nil {
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](corev1.DefaultClientIPServiceAffinitySeconds)}}
	}
	for i := range s.Spec.Ports {
		p := &s.Spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == (intstr.IntOrString{}) {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		return
	}
	if s.Spec.InternalTrafficPolicy == nil {
		s.Spec.InternalTrafficPolicy = ptr.To(corev1.ServiceInternalTrafficPolicyCluster)
	}
	if (s.Spec.Type == corev1.ServiceTypeNodePort || s.Spec.Type == corev1.ServiceTypeLoadBalancer) && s.Spec.ExternalTrafficPolicy == "" {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if s.Spec.Type == corev1.ServiceTypeLoadBalancer && s.Spec.AllocateLoadBalancerNodePorts == nil {
		s.Spec.AllocateLoadBalancerNodePorts = ptr.To(true)
	}
	if s.Spec.IPFamilyPolicy == nil {
		s.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
	}
	if len(s.Spec.IPFamilies) == 0 {
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	if s.Spec.ClusterIP != "" && len(s.Spec.ClusterIPs) == 0 {
		s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
	}
	if s.Spec.ClusterIP == "" && len(s.Spec.ClusterIPs) > 0 {
		s.Spec.ClusterIP = s.Spec.ClusterIPs[0]
	}
}

func validateService(s *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	if !serviceTypes.Has(s.Spec.Type) {
		errs = append(errs, field.NotSupported(sp.Child("type"), s.Spec.Type, sets.List(serviceTypes)))
	}
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		for _, msg := range validation.IsDNS1123Subdomain(s.Spec.ExternalName) {
			errs = append(errs, field.Invalid(sp.Child("externalName"), s.Spec.ExternalName, msg))
		}
	} else if len(s.Spec.Ports) == 0 && s.Spec.ClusterIP != corev1.ClusterIPNone {
		errs = append(errs, field.Required(sp.Child("ports"), ""))
	}
	if s.Spec.ClusterIP != "" && s.Spec.ClusterIP != corev1.ClusterIPNone {
		if _, err := netip.ParseAddr(s.Spec.ClusterIP); err != nil {
			errs = append(errs, field.Invalid(sp.Child("clusterIPs").Index(0), s.Spec.ClusterIP, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
		}
	}
	names, ports := sets.New[string](), sets.New[string]()
	for i, p := range s.Spec.Ports {
		pp := sp.Child("ports").Index(i)
		if len(s.Spec.Ports) > 1 && p.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), ""))
		}
		if p.Name != "" {
			for _, msg := range validation.IsDNS1123Label(p.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), p.Name, msg))
			}
			if names.Has(p.Name) {
				errs = append(errs, field.Duplicate(pp.Child("name"), p.Name))
			}
			names.Insert(p.Name)
		}
		errs = append(errs, podspec.ValidatePortNumber(p.Port, pp.Child("port"))...)
		if !podspec.Protocols.Has(p.Protocol) {
			errs = append(errs, field.NotSupported(pp.Child("protocol"), p.Protocol, sets.List(podspec.Protocols)))
		}
		errs = append(errs, podspec.ValidatePortOrName(p.TargetPort, pp.Child("targetPort"))...)
		if p.NodePort != 0 {
			if s.Spec.Type == corev1.ServiceTypeClusterIP {
				errs = append(errs, field.Forbidden(pp.Child("nodePort"), "may not be used when `type` is 'ClusterIP'"))
			}
			errs = append(errs, podspec.ValidatePortNumber(p.NodePort, pp.Child("nodePort"))...)
		}
		key := fmt.Sprintf("%s/%d", p.Protocol, p.Port)
		if ports.Has(key) {
			errs = append(errs, field.Duplicate(pp, key))
		}
		ports.Insert(key)
	}
	if s.Spec.Selector != nil {
		for k, v := range s.Spec.Selector {
			for _, msg := range validation.IsQualifiedName(k) {
				errs = append(errs, field.Invalid(sp.Child("selector"), k, msg))
			}
			for _, msg := range validation.IsValidLabelValue(v) {
				errs = append(errs, field.Invalid(sp.Child("selector"), v, msg))
			}
		}
	}
	return errs
}

func serviceRow(o runtime.Object, _ bool) []any {
	s := o.(*corev1.Service)
	external := "<none>"
	switch s.Spec.Type {
	case corev1.ServiceTypeExternalName:
		external = s.Spec.ExternalName
	case corev1.ServiceTypeLoadBalancer:
		var ips []string
		for _, ing := range s.Status.LoadBalancer.Ingress {
			ips = append(ips, orDefault(ing.IP, ing.Hostname))
		}
		ips = append(ips, s.Spec.ExternalIPs...)
		external = "<pending>"
		if len(ips) > 0 {
			external = strings.Join(ips, ",")
		}
	default:
		if len(s.Spec.ExternalIPs) > 0 {
			external = strings.Join(s.Spec.ExternalIPs, ",")
		}
	}
	var ports []string
	for _, p := range s.Spec.Ports {
		if p.NodePort != 0 {
			ports = append(ports, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol))
		} else {
			ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
		}
	}
	portStr := "<none>"
	if len(ports) > 0 {
		portStr = strings.Join(ports, ",")
	}
	clusterIP := s.Spec.ClusterIP
	if clusterIP == "" {
		clusterIP = "<none>"
	}
	return []any{s.Name, string(s.Spec.Type), clusterIP, external, portStr, age(s.CreationTimestamp), labelsString(s.Spec.Selector)}
}

// wireServiceAllocation gives Services their ClusterIP and NodePorts from
// the registry's allocators and returns them on deletion.
func (g *Registry) wireServiceAllocation(r *Resource) {
	owner := func(s *corev1.Service) string { return s.Namespace + "/" + s.Name }
	r.OnCreate = func(_ context.Context, o runtime.Object, dryRun bool) error {
		return g.allocateService(o.(*corev1.Service), nil, owner(o.(*corev1.Service)), dryRun)
	}
	r.OnUpdate = func(o, old runtime.Object, dryRun bool) error {
		return g.allocateService(o.(*corev1.Service), old.(*corev1.Service), owner(o.(*corev1.Service)), dryRun)
	}
	r.OnDeleted = func(o runtime.Object) {
		s := o.(*corev1.Service)
		ctx := context.Background()
		if s.Spec.ClusterIP != "" && s.Spec.ClusterIP != corev1.ClusterIPNone {
			_ = g.IPs.Release(ctx, s.Spec.ClusterIP, owner(s))
		}
		for _, p := range s.Spec.Ports {
			if p.NodePort != 0 {
				_ = g.Ports.Release(ctx, fmt.Sprint(p.NodePort), owner(s))
			}
		}
	}
}

func (g *Registry) allocateService(s, old *corev1.Service, owner string, dryRun bool) error {
	ctx := context.Background()
	sp := field.NewPath("spec")
	if old != nil {
		dropTypeDependent(s, old)
		if !dryRun {
			// What the new spec no longer holds goes back to the pools.
			for _, r := range releasedAllocations(s, old) {
				if r.ip != "" {
					_ = g.IPs.Release(ctx, r.ip, owner)
				} else {
					_ = g.Ports.Release(ctx, fmt.Sprint(r.nodePort), owner)
				}
			}
		}
	}
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil
		return nil
	}
	if s.Spec.ClusterIP == "" || (old != nil && old.Spec.ClusterIP == s.Spec.ClusterIP) {
		if s.Spec.ClusterIP == "" {
			ip, err := g.IPs.AllocateNext(ctx, owner, dryRun)
			if err != nil {
				return apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: %w", err))
			}
			s.Spec.ClusterIP = ip
		}
	} else if s.Spec.ClusterIP != corev1.ClusterIPNone {
		err := g.IPs.Allocate(ctx, s.Spec.ClusterIP, owner, dryRun)
		switch {
		case errors.Is(err, ErrOutOfRange):
			return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), s.Name, field.ErrorList{field.Invalid(sp.Child("clusterIPs").Index(0), s.Spec.ClusterIP, "failed to allocate IP "+s.Spec.ClusterIP+": the provided IP ("+s.Spec.ClusterIP+") is not in the valid range. The range of valid IPs is "+g.ipRange())})
		case errors.Is(err, ErrAllocated):
			return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), s.Name, field.ErrorList{field.Invalid(sp.Child("clusterIPs").Index(0), s.Spec.ClusterIP, "failed to allocate IP "+s.Spec.ClusterIP+": provided IP is already allocated")})
		case err != nil:
			return apierrors.NewInternalError(err)
		}
	}
	s.Spec.ClusterIPs = []string{s.Spec.ClusterIP}
	needPorts := needsNodePorts(s)
	for i := range s.Spec.Ports {
		p := &s.Spec.Ports[i]
		if !needPorts {
			continue
		}
		if p.NodePort == 0 {
			v, err := g.Ports.AllocateNext(ctx, owner, dryRun)
			if err != nil {
				return apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: %w", err))
			}
			fmt.Sscan(v, &p.NodePort)
			continue
		}
		err := g.Ports.Allocate(ctx, fmt.Sprint(p.NodePort), owner, dryRun)
		fp := sp.Child("ports").Index(i).Child("nodePort")
		switch {
		case errors.Is(err, ErrOutOfRange):
			return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), s.Name, field.ErrorList{field.Invalid(fp, p.NodePort, "provided port is not in the valid range. The range of valid ports is 30000-32767")})
		case errors.Is(err, ErrAllocated):
			return apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), s.Name, field.ErrorList{field.Invalid(fp, p.NodePort, "provided port is already allocated")})
		case err != nil:
			return apierrors.NewInternalError(err)
		}
	}
	return nil
}

func (g *Registry) ipRange() string { return g.serviceCIDR }

// needsNodePorts tells whether a Service of this spec holds node ports.
func needsNodePorts(s *corev1.Service) bool {
	return s.Spec.Type == corev1.ServiceTypeNodePort || (s.Spec.Type == corev1.ServiceTypeLoadBalancer && ptr.Deref(s.Spec.AllocateLoadBalancerNodePorts, true))
}

// dropTypeDependent clears, as upstream does on a type change, the node
// ports and cluster IPs the new type does not use, where the update kept
// them as they were (a client changing the type rarely clears them).
func dropTypeDependent(s, old *corev1.Service) {
	if !needsNodePorts(s) {
		oldPorts := map[int32]bool{}
		for _, p := range old.Spec.Ports {
			oldPorts[p.NodePort] = true
		}
		for i := range s.Spec.Ports {
			if p := &s.Spec.Ports[i]; p.NodePort != 0 && oldPorts[p.NodePort] {
				p.NodePort = 0
			}
		}
	}
	if s.Spec.Type == corev1.ServiceTypeExternalName && s.Spec.ClusterIP == old.Spec.ClusterIP {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil
	}
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer || s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		if s.Spec.HealthCheckNodePort == old.Spec.HealthCheckNodePort {
			s.Spec.HealthCheckNodePort = 0
		}
	}
}

// released is one allocation an update gives back: a cluster IP or a node
// port.
type released struct {
	ip       string
	nodePort int32
}

// releasedAllocations are the old Service's cluster IP and node ports that
// the updated one no longer holds.
func releasedAllocations(s, old *corev1.Service) []released {
	var out []released
	if ip := old.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone && ip != s.Spec.ClusterIP {
		out = append(out, released{ip: ip})
	}
	keep := map[int32]bool{}
	for _, p := range s.Spec.Ports {
		keep[p.NodePort] = true
	}
	for _, p := range old.Spec.Ports {
		if p.NodePort != 0 && !keep[p.NodePort] {
			out = append(out, released{nodePort: p.NodePort})
		}
	}
	return out
}
