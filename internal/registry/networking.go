package registry

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	netutils "k8s.io/utils/net"
	"k8s.io/utils/ptr"
)

func ingressStrategy(r *Resource) {
	r.ShortNames = []string{"ing"}
	r.Status = true
	r.Validate = asValidate(func(ing *networkingv1.Ingress) field.ErrorList {
		var errs field.ErrorList
		if ing.Spec.DefaultBackend == nil && len(ing.Spec.Rules) == 0 {
			errs = append(errs, field.Invalid(field.NewPath("spec"), "", "either `defaultBackend` or `rules` must be specified"))
		}
		for i, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for j, p := range rule.HTTP.Paths {
				pp := field.NewPath("spec", "rules").Index(i).Child("http", "paths").Index(j)
				if p.PathType == nil {
					errs = append(errs, field.Required(pp.Child("pathType"), "pathType must be specified"))
				} else if *p.PathType != networkingv1.PathTypeImplementationSpecific && !strings.HasPrefix(p.Path, "/") {
					errs = append(errs, field.Invalid(pp.Child("path"), p.Path, "must be an absolute path"))
				}
			}
		}
		return errs
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Class", "string", 0, ""), col("Hosts", "string", 0, ""), col("Address", "string", 0, ""), col("Ports", "string", 0, ""), ageCol}
	r.Row = asRow(func(ing *networkingv1.Ingress, _ bool) []any {
		var hosts, addrs []string
		for _, rule := range ing.Spec.Rules {
			hosts = append(hosts, orDefault(rule.Host, "*"))
		}
		for _, a := range ing.Status.LoadBalancer.Ingress {
			addrs = append(addrs, orDefault(a.IP, a.Hostname))
		}
		ports := "80"
		if len(ing.Spec.TLS) > 0 {
			ports = "80, 443"
		}
		hostStr := "*"
		if len(hosts) > 0 {
			hostStr = joinLimited(hosts, 3)
		}
		return []any{ing.Name, orNone(ptrString(ing.Spec.IngressClassName)), hostStr, strings.Join(addrs, ","), ports, age(ing.CreationTimestamp)}
	})
}

func ingressClassTable() ([]metav1.TableColumnDefinition, func(runtime.Object, bool) []any) {
	return []metav1.TableColumnDefinition{nameCol, col("Controller", "string", 0, ""), col("Parameters", "string", 0, ""), ageCol}, func(o runtime.Object, _ bool) []any {
		c := o.(*networkingv1.IngressClass)
		params := "<none>"
		if p := c.Spec.Parameters; p != nil {
			params = p.Kind + "/" + p.Name
		}
		return []any{c.Name, c.Spec.Controller, params, age(c.CreationTimestamp)}
	}
}

func networkPolicyStrategy(r *Resource) {
	r.ShortNames = []string{"netpol"}
	r.Default = asDefault(func(np *networkingv1.NetworkPolicy) {
		if len(np.Spec.PolicyTypes) == 0 {
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
			if len(np.Spec.Egress) > 0 {
				np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
			}
		}
		proto := func(ports []networkingv1.NetworkPolicyPort) {
			for i := range ports {
				if ports[i].Protocol == nil {
					ports[i].Protocol = ptr.To(corev1.ProtocolTCP)
				}
			}
		}
		for i := range np.Spec.Ingress {
			proto(np.Spec.Ingress[i].Ports)
		}
		for i := range np.Spec.Egress {
			proto(np.Spec.Egress[i].Ports)
		}
	})
	r.Validate = asValidate(func(np *networkingv1.NetworkPolicy) field.ErrorList {
		var errs field.ErrorList
		peers := func(list []networkingv1.NetworkPolicyPeer, p *field.Path) {
			for i, peer := range list {
				if b := peer.IPBlock; b != nil {
					if _, _, err := netutils.ParseCIDRSloppy(b.CIDR); err != nil {
						errs = append(errs, field.Invalid(p.Index(i).Child("ipBlock", "cidr"), b.CIDR, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
					}
					for j, ex := range b.Except {
						if _, _, err := netutils.ParseCIDRSloppy(ex); err != nil {
							errs = append(errs, field.Invalid(p.Index(i).Child("ipBlock", "except").Index(j), ex, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
						}
					}
				}
			}
		}
		for i, in := range np.Spec.Ingress {
			peers(in.From, field.NewPath("spec", "ingress").Index(i).Child("from"))
		}
		for i, eg := range np.Spec.Egress {
			peers(eg.To, field.NewPath("spec", "egress").Index(i).Child("to"))
		}
		for i, t := range np.Spec.PolicyTypes {
			if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
				errs = append(errs, field.NotSupported(field.NewPath("spec", "policyTypes").Index(i), t, []string{"Ingress", "Egress"}))
			}
		}
		return errs
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Pod-Selector", "string", 0, ""), ageCol}
	r.Row = asRow(func(np *networkingv1.NetworkPolicy, _ bool) []any {
		sel := selectorString(&np.Spec.PodSelector)
		return []any{np.Name, sel, age(np.CreationTimestamp)}
	})
}
