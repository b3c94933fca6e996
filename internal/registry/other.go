package registry

import (
	"fmt"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	netutils "k8s.io/utils/net"
	"k8s.io/utils/ptr"
)

func leaseTable() ([]metav1.TableColumnDefinition, func(runtime.Object, bool) []any) {
	return []metav1.TableColumnDefinition{nameCol, col("Holder", "string", 0, ""), ageCol}, func(o runtime.Object, _ bool) []any {
		l := o.(*coordinationv1.Lease)
		return []any{l.Name, ptrString(l.Spec.HolderIdentity), age(l.CreationTimestamp)}
	}
}

func endpointSliceStrategy(r *Resource) {
	r.Validate = func(o runtime.Object) field.ErrorList {
		s := o.(*discoveryv1.EndpointSlice)
		var errs field.ErrorList
		switch s.AddressType {
		case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN:
		default:
			errs = append(errs, field.NotSupported(field.NewPath("addressType"), s.AddressType, []string{"IPv4", "IPv6", "FQDN"}))
		}
		if len(s.Endpoints) > 1000 {
			errs = append(errs, field.TooMany(field.NewPath("endpoints"), len(s.Endpoints), 1000))
		}
		return errs
	}
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("AddressType", "string", 0, ""), col("Ports", "string", 0, ""), col("Endpoints", "string", 0, ""), ageCol}
	r.Row = func(o runtime.Object, _ bool) []any {
		s := o.(*discoveryv1.EndpointSlice)
		var ports, addrs []string
		for _, p := range s.Ports {
			ports = append(ports, fmt.Sprint(ptr.Deref(p.Port, 0)))
		}
		for _, e := range s.Endpoints {
			addrs = append(addrs, e.Addresses...)
		}
		return []any{s.Name, string(s.AddressType), joinLimited(ports, 3), joinLimited(addrs, 3), age(s.CreationTimestamp)}
	}
}

// events.k8s.io/v1 Events share core/v1 Event storage, converted field by
// field as upstream's conversion does.
func eventsV1Strategy(r *Resource) {
	r.StorageGVK = corev1.SchemeGroupVersion.WithKind("Event")
	// Upstream's field label conversion for events.k8s.io/v1.
	r.FieldLabels = map[string]string{
		"reason": "reason", "type": "type", "reportingController": "reportingComponent", "deprecatedSource": "source",
		"regarding.kind": "involvedObject.kind", "regarding.namespace": "involvedObject.namespace", "regarding.name": "involvedObject.name",
		"regarding.uid": "involvedObject.uid", "regarding.apiVersion": "involvedObject.apiVersion",
		"regarding.resourceVersion": "involvedObject.resourceVersion", "regarding.fieldPath": "involvedObject.fieldPath",
	}
	r.ToStorage = func(o runtime.Object) (runtime.Object, error) {
		e := o.(*eventsv1.Event)
		out := &corev1.Event{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
			ObjectMeta: e.ObjectMeta, InvolvedObject: e.Regarding, Related: e.Related, Reason: e.Reason, Message: e.Note,
			Type: e.Type, Action: e.Action, EventTime: e.EventTime, ReportingController: e.ReportingController, ReportingInstance: e.ReportingInstance,
			Source: e.DeprecatedSource, FirstTimestamp: e.DeprecatedFirstTimestamp, LastTimestamp: e.DeprecatedLastTimestamp, Count: e.DeprecatedCount,
		}
		if e.Series != nil {
			out.Series = &corev1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
		}
		return out, nil
	}
	r.FromStorage = func(o runtime.Object) (runtime.Object, error) {
		e := o.(*corev1.Event)
		out := &eventsv1.Event{
			TypeMeta:   metav1.TypeMeta{APIVersion: "events.k8s.io/v1", Kind: "Event"},
			ObjectMeta: e.ObjectMeta, Regarding: e.InvolvedObject, Related: e.Related, Reason: e.Reason, Note: e.Message,
			Type: e.Type, Action: e.Action, EventTime: e.EventTime, ReportingController: e.ReportingController, ReportingInstance: e.ReportingInstance,
			DeprecatedSource: e.Source, DeprecatedFirstTimestamp: e.FirstTimestamp, DeprecatedLastTimestamp: e.LastTimestamp, DeprecatedCount: e.Count,
		}
		if e.Series != nil {
			out.Series = &eventsv1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
		}
		return out, nil
	}
	r.Validate = func(o runtime.Object) field.ErrorList {
		e := o.(*eventsv1.Event)
		var errs field.ErrorList
		if e.EventTime.IsZero() {
			errs = append(errs, field.Required(field.NewPath("eventTime"), ""))
		}
		if e.ReportingController == "" {
			errs = append(errs, field.Required(field.NewPath("reportingController"), ""))
		}
		if e.Type != corev1.EventTypeNormal && e.Type != corev1.EventTypeWarning {
			errs = append(errs, field.NotSupported(field.NewPath("type"), e.Type, []string{"Normal", "Warning"}))
		}
		return errs
	}
	r.Columns, r.Row = createdAtTable()
}

func ingressStrategy(r *Resource) {
	r.ShortNames = []string{"ing"}
	r.Status = true
	r.Validate = func(o runtime.Object) field.ErrorList {
		ing := o.(*networkingv1.Ingress)
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
	}
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Class", "string", 0, ""), col("Hosts", "string", 0, ""), col("Address", "string", 0, ""), col("Ports", "string", 0, ""), ageCol}
	r.Row = func(o runtime.Object, _ bool) []any {
		ing := o.(*networkingv1.Ingress)
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
	}
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
	r.Default = func(o runtime.Object) {
		np := o.(*networkingv1.NetworkPolicy)
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
	}
	r.Validate = func(o runtime.Object) field.ErrorList {
		np := o.(*networkingv1.NetworkPolicy)
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
	}
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Pod-Selector", "string", 0, ""), ageCol}
	r.Row = func(o runtime.Object, _ bool) []any {
		np := o.(*networkingv1.NetworkPolicy)
		sel := selectorString(&np.Spec.PodSelector)
		return []any{np.Name, sel, age(np.CreationTimestamp)}
	}
}

func roleBindingTable() ([]metav1.TableColumnDefinition, func(runtime.Object, bool) []any) {
	return []metav1.TableColumnDefinition{nameCol, col("Role", "string", 0, ""), ageCol, col("Users", "string", 1, ""), col("Groups", "string", 1, ""), col("ServiceAccounts", "string", 1, "")}, func(o runtime.Object, _ bool) []any {
		var ref rbacv1.RoleRef
		var subjects []rbacv1.Subject
		switch b := o.(type) {
		case *rbacv1.RoleBinding:
			ref, subjects = b.RoleRef, b.Subjects
		case *rbacv1.ClusterRoleBinding:
			ref, subjects = b.RoleRef, b.Subjects
		}
		var users, groups, sas []string
		for _, s := range subjects {
			switch s.Kind {
			case rbacv1.UserKind:
				users = append(users, s.Name)
			case rbacv1.GroupKind:
				groups = append(groups, s.Name)
			case rbacv1.ServiceAccountKind:
				sas = append(sas, s.Namespace+"/"+s.Name)
			}
		}
		return []any{nameOf(o), ref.Kind + "/" + ref.Name, ageOf(o), strings.Join(users, ", "), strings.Join(groups, ", "), strings.Join(sas, ", ")}
	}
}

func storageClassStrategy(r *Resource) {
	r.ShortNames = []string{"sc"}
	r.Default = func(o runtime.Object) {
		sc := o.(*storagev1.StorageClass)
		if sc.ReclaimPolicy == nil {
			sc.ReclaimPolicy = ptr.To(corev1.PersistentVolumeReclaimDelete)
		}
		if sc.VolumeBindingMode == nil {
			sc.VolumeBindingMode = ptr.To(storagev1.VolumeBindingImmediate)
		}
	}
	r.Validate = func(o runtime.Object) field.ErrorList {
		if o.(*storagev1.StorageClass).Provisioner == "" {
			return field.ErrorList{field.Required(field.NewPath("provisioner"), "")}
		}
		return nil
	}
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Provisioner", "string", 0, ""), col("ReclaimPolicy", "string", 0, ""), col("VolumeBindingMode", "string", 0, ""), col("AllowVolumeExpansion", "string", 0, ""), ageCol}
	r.Row = func(o runtime.Object, _ bool) []any {
		sc := o.(*storagev1.StorageClass)
		name := sc.Name
		if sc.Annotations["storageclass.kubernetes.io/is-default-class"] == "true" {
			name += " (default)"
		}
		return []any{name, sc.Provisioner, string(ptr.Deref(sc.ReclaimPolicy, "")), string(ptr.Deref(sc.VolumeBindingMode, "")), ptr.Deref(sc.AllowVolumeExpansion, false), age(sc.CreationTimestamp)}
	}
}

func priorityClassStrategy(r *Resource) {
	r.ShortNames = []string{"pc"}
	r.Default = func(o runtime.Object) {
		pc := o.(*schedulingv1.PriorityClass)
		if pc.PreemptionPolicy == nil {
			pc.PreemptionPolicy = ptr.To(corev1.PreemptLowerPriority)
		}
	}
	r.Validate = func(o runtime.Object) field.ErrorList {
		pc := o.(*schedulingv1.PriorityClass)
		if strings.HasPrefix(pc.Name, "system-") && wellKnownPriorities[pc.Name] == 0 {
			return field.ErrorList{field.Forbidden(field.NewPath("metadata", "name"), "priority class names with 'system-' prefix are reserved for system use only")}
		}
		if pc.Value > 1000000000 && wellKnownPriorities[pc.Name] == 0 {
			return field.ErrorList{field.Forbidden(field.NewPath("value"), "maximum allowed value of a user defined priority is 1000000000")}
		}
		return nil
	}
	r.ValidateUpdate = func(o, old runtime.Object) field.ErrorList {
		if o.(*schedulingv1.PriorityClass).Value != old.(*schedulingv1.PriorityClass).Value {
			return field.ErrorList{field.Forbidden(field.NewPath("value"), "may not be changed in an update.")}
		}
		return nil
	}
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Value", "integer", 0, ""), col("Global-Default", "boolean", 0, ""), ageCol, col("PreemptionPolicy", "string", 0, "")}
	r.Row = func(o runtime.Object, _ bool) []any {
		pc := o.(*schedulingv1.PriorityClass)
		return []any{pc.Name, int64(pc.Value), pc.GlobalDefault, age(pc.CreationTimestamp), string(ptr.Deref(pc.PreemptionPolicy, ""))}
	}
}

func pdbStrategy(r *Resource) {
	r.ShortNames = []string{"pdb"}
	r.Status = true
	r.Validate = func(o runtime.Object) field.ErrorList {
		p := o.(*policyv1.PodDisruptionBudget)
		if p.Spec.MinAvailable != nil && p.Spec.MaxUnavailable != nil {
			return field.ErrorList{field.Invalid(field.NewPath("spec"), "", "minAvailable and maxUnavailable cannot be both set")}
		}
		errs := validateIntOrPercent(p.Spec.MinAvailable, field.NewPath("spec", "minAvailable"))
		return append(errs, validateIntOrPercent(p.Spec.MaxUnavailable, field.NewPath("spec", "maxUnavailable"))...)
	}
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Min Available", "string", 0, ""), col("Max Unavailable", "string", 0, ""), col("Allowed Disruptions", "integer", 0, ""), ageCol}
	r.Row = func(o runtime.Object, _ bool) []any {
		p := o.(*policyv1.PodDisruptionBudget)
		minA, maxU := "N/A", "N/A"
		if p.Spec.MinAvailable != nil {
			minA = p.Spec.MinAvailable.String()
		}
		if p.Spec.MaxUnavailable != nil {
			maxU = p.Spec.MaxUnavailable.String()
		}
		return []any{p.Name, minA, maxU, int64(p.Status.DisruptionsAllowed), age(p.CreationTimestamp)}
	}
}

func hpaColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{nameCol, col("Reference", "string", 0, ""), col("Targets", "string", 0, ""), col("MinPods", "string", 0, ""), col("MaxPods", "string", 0, ""), col("Replicas", "string", 0, ""), ageCol}
}

func hpaRow(h *autoscalingv2.HorizontalPodAutoscaler) []any {
	var targets []string
	for _, m := range h.Spec.Metrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Target.AverageUtilization != nil {
			cur := "<unknown>"
			for _, c := range h.Status.CurrentMetrics {
				if c.Resource != nil && c.Resource.Name == m.Resource.Name && c.Resource.Current.AverageUtilization != nil {
					cur = fmt.Sprintf("%d%%", *c.Resource.Current.AverageUtilization)
				}
			}
			targets = append(targets, fmt.Sprintf("%s: %s/%d%%", m.Resource.Name, cur, *m.Resource.Target.AverageUtilization))
		} else {
			targets = append(targets, "<unknown>")
		}
	}
	ref := h.Spec.ScaleTargetRef.Kind + "/" + h.Spec.ScaleTargetRef.Name
	return []any{h.Name, ref, joinLimited(targets, 2), fmt.Sprint(ptr.Deref(h.Spec.MinReplicas, 1)), int64(h.Spec.MaxReplicas), int64(h.Status.CurrentReplicas), age(h.CreationTimestamp)}
}

func validateHPA(h *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	if h.Spec.MinReplicas != nil && *h.Spec.MinReplicas < 1 {
		errs = append(errs, field.Invalid(sp.Child("minReplicas"), *h.Spec.MinReplicas, "must be greater than or equal to 1"))
	}
	if h.Spec.MaxReplicas < 1 {
		errs = append(errs, field.Invalid(sp.Child("maxReplicas"), h.Spec.MaxReplicas, "must be greater than 0"))
	}
	if h.Spec.MinReplicas != nil && h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		errs = append(errs, field.Invalid(sp.Child("maxReplicas"), h.Spec.MaxReplicas, "must be greater than or equal to `minReplicas`"))
	}
	if h.Spec.ScaleTargetRef.Kind == "" {
		errs = append(errs, field.Required(sp.Child("scaleTargetRef", "kind"), ""))
	}
	if h.Spec.ScaleTargetRef.Name == "" {
		errs = append(errs, field.Required(sp.Child("scaleTargetRef", "name"), ""))
	}
	return errs
}

func defaultHPA(h *autoscalingv2.HorizontalPodAutoscaler) {
	if h.Spec.MinReplicas == nil {
		h.Spec.MinReplicas = ptr.To[int32](1)
	}
	if len(h.Spec.Metrics) == 0 {
		h.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](80)}}}}
	}
}

func hpaV2Strategy(r *Resource) {
	r.ShortNames = []string{"hpa"}
	r.Categories = []string{"all"}
	r.Status = true
	r.Default = func(o runtime.Object) { defaultHPA(o.(*autoscalingv2.HorizontalPodAutoscaler)) }
	r.Validate = func(o runtime.Object) field.ErrorList { return validateHPA(o.(*autoscalingv2.HorizontalPodAutoscaler)) }
	r.Columns = hpaColumns()
	r.Row = func(o runtime.Object, _ bool) []any { return hpaRow(o.(*autoscalingv2.HorizontalPodAutoscaler)) }
}

// hpaV1Strategy serves autoscaling/v1 from the v2 storage: the CPU target
// maps to a Resource metric; other v2 metrics are kept in storage and not
// shown in v1.
func hpaV1Strategy(r *Resource) {
	r.ShortNames = []string{"hpa"}
	r.Categories = []string{"all"}
	r.Status = true
	r.StorageGVK = autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler")
	r.ToStorage = func(o runtime.Object) (runtime.Object, error) {
		return hpaV1ToV2(o.(*autoscalingv1.HorizontalPodAutoscaler)), nil
	}
	r.FromStorage = func(o runtime.Object) (runtime.Object, error) {
		return hpaV2ToV1(o.(*autoscalingv2.HorizontalPodAutoscaler)), nil
	}
	r.Default = func(o runtime.Object) {
		h := o.(*autoscalingv1.HorizontalPodAutoscaler)
		if h.Spec.MinReplicas == nil {
			h.Spec.MinReplicas = ptr.To[int32](1)
		}
	}
	r.Validate = func(o runtime.Object) field.ErrorList {
		return validateHPA(hpaV1ToV2(o.(*autoscalingv1.HorizontalPodAutoscaler)))
	}
	r.Columns = hpaColumns()
	r.Row = func(o runtime.Object, _ bool) []any {
		h := hpaV1ToV2(o.(*autoscalingv1.HorizontalPodAutoscaler))
		defaultHPA(h)
		return hpaRow(h)
	}
}

func hpaV1ToV2(h *autoscalingv1.HorizontalPodAutoscaler) *autoscalingv2.HorizontalPodAutoscaler {
	out := &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: h.ObjectMeta,
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: h.Spec.ScaleTargetRef.Kind, Name: h.Spec.ScaleTargetRef.Name, APIVersion: h.Spec.ScaleTargetRef.APIVersion},
			MinReplicas:    h.Spec.MinReplicas, MaxReplicas: h.Spec.MaxReplicas,
		},
		Status: autoscalingv2.HorizontalPodAutoscalerStatus{ObservedGeneration: h.Status.ObservedGeneration, LastScaleTime: h.Status.LastScaleTime, CurrentReplicas: h.Status.CurrentReplicas, DesiredReplicas: h.Status.DesiredReplicas},
	}
	if h.Spec.TargetCPUUtilizationPercentage != nil {
		out.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: h.Spec.TargetCPUUtilizationPercentage}}}}
	}
	if h.Status.CurrentCPUUtilizationPercentage != nil {
		out.Status.CurrentMetrics = []autoscalingv2.MetricStatus{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{Name: corev1.ResourceCPU, Current: autoscalingv2.MetricValueStatus{AverageUtilization: h.Status.CurrentCPUUtilizationPercentage}}}}
	}
	return out
}

func hpaV2ToV1(h *autoscalingv2.HorizontalPodAutoscaler) *autoscalingv1.HorizontalPodAutoscaler {
	out := &autoscalingv1.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: h.ObjectMeta,
		Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{Kind: h.Spec.ScaleTargetRef.Kind, Name: h.Spec.ScaleTargetRef.Name, APIVersion: h.Spec.ScaleTargetRef.APIVersion},
			MinReplicas:    h.Spec.MinReplicas, MaxReplicas: h.Spec.MaxReplicas,
		},
		Status: autoscalingv1.HorizontalPodAutoscalerStatus{ObservedGeneration: h.Status.ObservedGeneration, LastScaleTime: h.Status.LastScaleTime, CurrentReplicas: h.Status.CurrentReplicas, DesiredReplicas: h.Status.DesiredReplicas},
	}
	for _, m := range h.Spec.Metrics {
		if m.Resource != nil && m.Resource.Name == corev1.ResourceCPU && m.Resource.Target.AverageUtilization != nil {
			out.Spec.TargetCPUUtilizationPercentage = m.Resource.Target.AverageUtilization
		}
	}
	for _, m := range h.Status.CurrentMetrics {
		if m.Resource != nil && m.Resource.Name == corev1.ResourceCPU {
			out.Status.CurrentCPUUtilizationPercentage = m.Resource.Current.AverageUtilization
		}
	}
	return out
}

func runtimeClassTable() ([]metav1.TableColumnDefinition, func(runtime.Object, bool) []any) {
	return []metav1.TableColumnDefinition{nameCol, col("Handler", "string", 0, ""), ageCol}, func(o runtime.Object, _ bool) []any {
		rc := o.(*nodev1.RuntimeClass)
		return []any{rc.Name, rc.Handler, age(rc.CreationTimestamp)}
	}
}
