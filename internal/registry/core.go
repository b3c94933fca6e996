package registry

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"

	"github.com/skiff-sh/skiff/internal/podspec"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxConfigSize is the limit on the data of a ConfigMap or Secret (1 MiB).
const maxConfigSize = 1 << 20

func nodeStrategy(r *Resource) {
	r.Guard = nodeRestriction
	r.ShortNames = []string{"no"}
	r.Status = true
	r.StatusOnCreate = true
	r.Fields = asFields(func(o *corev1.Node) fields.Set {
		return fields.Set{"spec.unschedulable": fmt.Sprint(o.Spec.Unschedulable)}
	})
	// spec.podCIDR and spec.podCIDRs are one field in two shapes, as
	// upstream's conversion makes them.
	r.Default = asDefault(func(n *corev1.Node) {
		if len(n.Spec.PodCIDRs) == 0 && n.Spec.PodCIDR != "" {
			n.Spec.PodCIDRs = []string{n.Spec.PodCIDR}
		}
		if n.Spec.PodCIDR == "" && len(n.Spec.PodCIDRs) > 0 {
			n.Spec.PodCIDR = n.Spec.PodCIDRs[0]
		}
	})
	r.Validate = asValidate(func(o *corev1.Node) field.ErrorList { return validatePodCIDRs(o) })
	r.ValidateUpdate = asValidateUpdate(func(n, on *corev1.Node) field.ErrorList {
		errs := validatePodCIDRs(n)
		if len(on.Spec.PodCIDRs) > 0 && !slices.Equal(on.Spec.PodCIDRs, n.Spec.PodCIDRs) {
			errs = append(errs, field.Forbidden(field.NewPath("spec", "podCIDRs"), `node updates may not change podCIDR except from "" to valid`))
		}
		return errs
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Status", "string", 0, "The status of the node"), col("Roles", "string", 0, "The roles of the node"), ageCol, col("Version", "string", 0, "Kubelet Version reported by the node."),
		col("Internal-IP", "string", 1, ""), col("External-IP", "string", 1, ""), col("OS-Image", "string", 1, ""), col("Kernel-Version", "string", 1, ""), col("Container-Runtime", "string", 1, "")}
	r.Row = asRow(func(n *corev1.Node, _ bool) []any {
		status := "Unknown"
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				status = map[corev1.ConditionStatus]string{corev1.ConditionTrue: "Ready", corev1.ConditionFalse: "NotReady"}[c.Status]
				if status == "" {
					status = "Unknown"
				}
			}
		}
		if n.Spec.Unschedulable {
			status += ",SchedulingDisabled"
		}
		var roles []string
		for k := range n.Labels {
			if role, ok := strings.CutPrefix(k, "node-role.kubernetes.io/"); ok && role != "" {
				roles = append(roles, role)
			}
		}
		sort.Strings(roles)
		addr := func(t corev1.NodeAddressType) string {
			for _, a := range n.Status.Addresses {
				if a.Type == t {
					return a.Address
				}
			}
			return "<none>"
		}
		ni := n.Status.NodeInfo
		return []any{n.Name, status, joinLimited(roles, 100), age(n.CreationTimestamp), ni.KubeletVersion,
			addr(corev1.NodeInternalIP), addr(corev1.NodeExternalIP), orDefault(ni.OSImage, "<unknown>"), orDefault(ni.KernelVersion, "<unknown>"), orDefault(ni.ContainerRuntimeVersion, "<unknown>")}
	})
}

// validatePodCIDRs checks a node's pod ranges: valid CIDRs, podCIDR the
// first of podCIDRs, at most one per IP family.
func validatePodCIDRs(n *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	path := field.NewPath("spec", "podCIDRs")
	families := map[bool]bool{}
	for i, c := range n.Spec.PodCIDRs {
		_, ipnet, err := net.ParseCIDR(c)
		if err != nil {
			errs = append(errs, field.Invalid(path.Index(i), c, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
			continue
		}
		v4 := ipnet.IP.To4() != nil
		if families[v4] {
			errs = append(errs, field.Invalid(path, n.Spec.PodCIDRs, "may specify no more than one CIDR for each IP family"))
		}
		families[v4] = true
	}
	if len(n.Spec.PodCIDRs) > 0 && n.Spec.PodCIDR != n.Spec.PodCIDRs[0] {
		errs = append(errs, field.Invalid(field.NewPath("spec", "podCIDR"), n.Spec.PodCIDR, "must match the first element of podCIDRs"))
	}
	return errs
}

func namespaceStrategy(r *Resource) {
	r.ShortNames = []string{"ns"}
	r.Status = true
	r.Parts = map[string]Part{"finalize": {Take: finalizePart, Verbs: []string{"update"}}}
	r.Default = asDefault(func(ns *corev1.Namespace) {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[corev1.LabelMetadataName] = ns.Name
		if ns.Status.Phase == "" {
			ns.Status.Phase = corev1.NamespaceActive
		}
	})
	r.OnCreate = func(_ context.Context, o runtime.Object, _ bool) error {
		ns := o.(*corev1.Namespace)
		ns.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
		ns.Status.Phase = corev1.NamespaceActive
		return nil
	}
	r.Fields = asFields(func(o *corev1.Namespace) fields.Set {
		return fields.Set{"status.phase": string(o.Status.Phase)}
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Status", "string", 0, "The status of the namespace"), ageCol}
	r.Row = asRow(func(ns *corev1.Namespace, _ bool) []any {
		return []any{ns.Name, string(ns.Status.Phase), age(ns.CreationTimestamp)}
	})
}

func configMapStrategy(r *Resource) {
	r.ShortNames = []string{"cm"}
	r.Validate = asValidate(func(cm *corev1.ConfigMap) field.ErrorList {
		return validateDataKeys(cm.Data, cm.BinaryData, field.NewPath("data"), field.NewPath("binaryData"))
	})
	r.ValidateUpdate = asValidateUpdate(func(cm, ocm *corev1.ConfigMap) field.ErrorList {
		errs := validateDataKeys(cm.Data, cm.BinaryData, field.NewPath("data"), field.NewPath("binaryData"))
		return append(errs, validateImmutableData(ocm.Immutable, cm.Immutable, !apiequality.Semantic.DeepEqual(cm.Data, ocm.Data) || !apiequality.Semantic.DeepEqual(cm.BinaryData, ocm.BinaryData))...)
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Data", "string", 0, "Data contains the configuration data."), ageCol}
	r.Row = asRow(func(cm *corev1.ConfigMap, _ bool) []any {
		return []any{cm.Name, int64(len(cm.Data) + len(cm.BinaryData)), age(cm.CreationTimestamp)}
	})
}

func validateImmutableData(oldImm, newImm *bool, changed bool) field.ErrorList {
	if oldImm == nil || !*oldImm {
		return nil
	}
	var errs field.ErrorList
	if newImm == nil || !*newImm {
		errs = append(errs, field.Forbidden(field.NewPath("immutable"), "field is immutable when `immutable` is set"))
	}
	if changed {
		errs = append(errs, field.Forbidden(field.NewPath("data"), "field is immutable when `immutable` is set"))
	}
	return errs
}

func validateDataKeys[T any](data map[string]string, binary map[string]T, dp, bp *field.Path) field.ErrorList {
	var errs field.ErrorList
	size := 0
	for k, v := range data {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(dp.Key(k), k, msg))
		}
		size += len(v)
	}
	for k := range binary {
		for _, msg := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(bp.Key(k), k, msg))
		}
		if _, dup := data[k]; dup {
			errs = append(errs, field.Invalid(bp.Key(k), k, "duplicate of key present in data"))
		}
	}
	if size > maxConfigSize {
		errs = append(errs, field.TooLong(dp, "", maxConfigSize))
	}
	return errs
}

var secretRequiredKeys = map[corev1.SecretType][]string{
	corev1.SecretTypeTLS:              {corev1.TLSCertKey, corev1.TLSPrivateKeyKey},
	corev1.SecretTypeDockerConfigJson: {corev1.DockerConfigJsonKey},
	corev1.SecretTypeDockercfg:        {corev1.DockerConfigKey},
	corev1.SecretTypeBasicAuth:        {},
}

func secretStrategy(r *Resource) {
	r.Default = asDefault(func(s *corev1.Secret) {
		if s.Type == "" {
			s.Type = corev1.SecretTypeOpaque
		}
		// stringData is write-only: it is merged into data.
		for k, v := range s.StringData {
			if s.Data == nil {
				s.Data = map[string][]byte{}
			}
			s.Data[k] = []byte(v)
		}
		s.StringData = nil
	})
	validate := func(s *corev1.Secret) field.ErrorList {
		errs := validateDataKeys[[]byte](nil, s.Data, field.NewPath("data"), field.NewPath("data"))
		size := 0
		for _, v := range s.Data {
			size += len(v)
		}
		if size > maxConfigSize {
			errs = append(errs, field.TooLong(field.NewPath("data"), "", maxConfigSize))
		}
		for _, k := range secretRequiredKeys[s.Type] {
			if _, ok := s.Data[k]; !ok {
				errs = append(errs, field.Required(field.NewPath("data").Key(k), ""))
			}
		}
		return errs
	}
	r.Validate = asValidate(func(o *corev1.Secret) field.ErrorList { return validate(o) })
	r.ValidateUpdate = asValidateUpdate(func(s, os *corev1.Secret) field.ErrorList {
		errs := validate(s)
		if s.Type != os.Type {
			errs = append(errs, field.Invalid(field.NewPath("type"), s.Type, "field is immutable"))
		}
		return append(errs, validateImmutableData(os.Immutable, s.Immutable, !apiequality.Semantic.DeepEqual(s.Data, os.Data))...)
	})
	r.Fields = asFields(func(o *corev1.Secret) fields.Set { return fields.Set{"type": string(o.Type)} })
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Type", "string", 0, "The type of the secret"), col("Data", "string", 0, "The number of entries in the data"), ageCol}
	r.Row = asRow(func(s *corev1.Secret, _ bool) []any {
		return []any{s.Name, string(s.Type), int64(len(s.Data)), age(s.CreationTimestamp)}
	})
}

func eventStrategy(r *Resource) {
	r.ShortNames = []string{"ev"}
	r.Fields = asFields(func(e *corev1.Event) fields.Set {
		src := e.Source.Component
		if src == "" {
			src = e.ReportingController
		}
		return fields.Set{
			"involvedObject.kind": e.InvolvedObject.Kind, "involvedObject.namespace": e.InvolvedObject.Namespace,
			"involvedObject.name": e.InvolvedObject.Name, "involvedObject.uid": string(e.InvolvedObject.UID),
			"involvedObject.apiVersion": e.InvolvedObject.APIVersion, "involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
			"involvedObject.fieldPath": e.InvolvedObject.FieldPath, "reason": e.Reason, "reportingComponent": e.ReportingController,
			"source": src, "type": e.Type,
		}
	})
	r.Validate = asValidate(func(e *corev1.Event) field.ErrorList {
		var errs field.ErrorList
		if e.InvolvedObject.Namespace != "" && e.InvolvedObject.Namespace != e.Namespace {
			errs = append(errs, field.Invalid(field.NewPath("involvedObject", "namespace"), e.InvolvedObject.Namespace, "does not match event.namespace"))
		}
		return errs
	})
	r.Columns = []metav1.TableColumnDefinition{col("Last Seen", "string", 0, ""), col("Type", "string", 0, ""), col("Reason", "string", 0, ""), col("Object", "string", 0, ""), col("Message", "string", 0, ""),
		col("Source", "string", 1, ""), col("First Seen", "string", 1, ""), col("Count", "string", 1, ""), nameCol}
	for i := range r.Columns {
		if r.Columns[i].Name == "Name" {
			r.Columns[i].Priority = 1
		}
	}
	r.Row = asRow(func(e *corev1.Event, _ bool) []any {
		last := e.LastTimestamp
		if last.IsZero() {
			last = metav1.NewTime(e.EventTime.Time)
		}
		first := e.FirstTimestamp
		if first.IsZero() {
			first = metav1.NewTime(e.EventTime.Time)
		}
		obj := strings.ToLower(e.InvolvedObject.Kind) + "/" + e.InvolvedObject.Name
		count := e.Count
		if e.Series != nil {
			count = e.Series.Count
		}
		return []any{age(last), e.Type, e.Reason, obj, strings.TrimSpace(e.Message), orDefault(e.Source.Component, e.ReportingController), age(first), int64(count), e.Name}
	})
}

func pvStrategy(r *Resource) {
	r.ShortNames = []string{"pv"}
	r.Status = true
	r.Default = asDefault(func(pv *corev1.PersistentVolume) {
		if pv.Spec.PersistentVolumeReclaimPolicy == "" {
			pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
		}
		if pv.Spec.VolumeMode == nil {
			m := corev1.PersistentVolumeFilesystem
			pv.Spec.VolumeMode = &m
		}
		if pv.Status.Phase == "" {
			pv.Status.Phase = corev1.VolumePending
		}
	})
	r.Validate = asValidate(func(pv *corev1.PersistentVolume) field.ErrorList {
		var errs field.ErrorList
		if len(pv.Spec.AccessModes) == 0 {
			errs = append(errs, field.Required(field.NewPath("spec", "accessModes"), ""))
		}
		if _, ok := pv.Spec.Capacity[corev1.ResourceStorage]; !ok {
			errs = append(errs, field.Required(field.NewPath("spec", "capacity").Key("storage"), ""))
		}
		return errs
	})
	r.Fields = asFields(func(o *corev1.PersistentVolume) fields.Set {
		return fields.Set{"name": o.Name}
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Capacity", "string", 0, ""), col("Access Modes", "string", 0, ""), col("Reclaim Policy", "string", 0, ""), col("Status", "string", 0, ""), col("Claim", "string", 0, ""), col("StorageClass", "string", 0, ""), col("VolumeAttributesClass", "string", 0, ""), col("Reason", "string", 0, ""), ageCol, col("VolumeMode", "string", 1, "")}
	r.Row = asRow(func(pv *corev1.PersistentVolume, _ bool) []any {
		claim := ""
		if c := pv.Spec.ClaimRef; c != nil {
			claim = c.Namespace + "/" + c.Name
		}
		q := pv.Spec.Capacity[corev1.ResourceStorage]
		mode := "Filesystem"
		if pv.Spec.VolumeMode != nil {
			mode = string(*pv.Spec.VolumeMode)
		}
		// As upstream's printer: a deleted volume kept by its finalizer
		// is Terminating.
		phase := string(pv.Status.Phase)
		if pv.DeletionTimestamp != nil {
			phase = "Terminating"
		}
		return []any{pv.Name, q.String(), accessModes(pv.Spec.AccessModes), string(pv.Spec.PersistentVolumeReclaimPolicy), phase, claim, pv.Spec.StorageClassName, orDefault(ptrString(pv.Spec.VolumeAttributesClassName), "<unset>"), pv.Status.Reason, age(pv.CreationTimestamp), mode}
	})
}

func ptrString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func accessModes(modes []corev1.PersistentVolumeAccessMode) string {
	short := map[corev1.PersistentVolumeAccessMode]string{corev1.ReadWriteOnce: "RWO", corev1.ReadOnlyMany: "ROX", corev1.ReadWriteMany: "RWX", corev1.ReadWriteOncePod: "RWOP"}
	var out []string
	for _, m := range modes {
		out = append(out, short[m])
	}
	return strings.Join(out, ",")
}

func pvcStrategy(r *Resource) {
	r.ShortNames = []string{"pvc"}
	r.Status = true
	r.Default = asDefault(func(pvc *corev1.PersistentVolumeClaim) {
		if pvc.Spec.VolumeMode == nil {
			m := corev1.PersistentVolumeFilesystem
			pvc.Spec.VolumeMode = &m
		}
		if pvc.Status.Phase == "" {
			pvc.Status.Phase = corev1.ClaimPending
		}
	})
	r.Validate = asValidate(func(pvc *corev1.PersistentVolumeClaim) field.ErrorList {
		var errs field.ErrorList
		if len(pvc.Spec.AccessModes) == 0 {
			errs = append(errs, field.Required(field.NewPath("spec", "accessModes"), "at least 1 access mode is required"))
		}
		if _, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
			errs = append(errs, field.Required(field.NewPath("spec", "resources").Key("storage"), ""))
		}
		return errs
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Status", "string", 0, ""), col("Volume", "string", 0, ""), col("Capacity", "string", 0, ""), col("Access Modes", "string", 0, ""), col("StorageClass", "string", 0, ""), col("VolumeAttributesClass", "string", 0, ""), ageCol, col("VolumeMode", "string", 1, "")}
	r.Row = asRow(func(pvc *corev1.PersistentVolumeClaim, _ bool) []any {
		capacity := ""
		if q, ok := pvc.Status.Capacity[corev1.ResourceStorage]; ok {
			capacity = q.String()
		}
		mode := "Filesystem"
		if pvc.Spec.VolumeMode != nil {
			mode = string(*pvc.Spec.VolumeMode)
		}
		phase := string(pvc.Status.Phase)
		if pvc.DeletionTimestamp != nil {
			phase = "Terminating"
		}
		return []any{pvc.Name, phase, pvc.Spec.VolumeName, capacity, accessModes(pvc.Status.AccessModes), ptrString(pvc.Spec.StorageClassName), orDefault(ptrString(pvc.Spec.VolumeAttributesClassName), "<unset>"), age(pvc.CreationTimestamp), mode}
	})
}

func rcStrategy(r *Resource) {
	r.ShortNames = []string{"rc"}
	r.Categories = []string{"all"}
	r.Status = true
	withScale(r)
	r.Default = asDefault(func(rc *corev1.ReplicationController) {
		if rc.Spec.Replicas == nil {
			one := int32(1)
			rc.Spec.Replicas = &one
		}
		if rc.Spec.Template != nil {
			if len(rc.Spec.Selector) == 0 {
				rc.Spec.Selector = rc.Spec.Template.Labels
			}
			if len(rc.Labels) == 0 {
				rc.Labels = rc.Spec.Template.Labels
			}
			podspec.Default(&rc.Spec.Template.Spec)
		}
	})
	r.Validate = asValidate(func(rc *corev1.ReplicationController) field.ErrorList {
		var errs field.ErrorList
		sp := field.NewPath("spec")
		if len(rc.Spec.Selector) == 0 {
			errs = append(errs, field.Required(sp.Child("selector"), ""))
		}
		if rc.Spec.Replicas != nil && *rc.Spec.Replicas < 0 {
			errs = append(errs, field.Invalid(sp.Child("replicas"), *rc.Spec.Replicas, "must be greater than or equal to 0"))
		}
		if rc.Spec.Template == nil {
			return append(errs, field.Required(sp.Child("template"), ""))
		}
		for k, v := range rc.Spec.Selector {
			if rc.Spec.Template.Labels[k] != v {
				errs = append(errs, field.Invalid(sp.Child("template", "metadata", "labels"), rc.Spec.Template.Labels, "`selector` does not match template `labels`"))
				break
			}
		}
		return append(errs, podspec.ValidateTemplate(rc.Spec.Template, sp.Child("template"))...)
	})
	r.Columns = replicaColumns()
	r.Row = asRow(func(rc *corev1.ReplicationController, _ bool) []any {
		var c, i string
		if rc.Spec.Template != nil {
			c, i = containerNames(rc.Spec.Template.Spec.Containers)
		}
		return []any{rc.Name, int64(deref(rc.Spec.Replicas)), int64(rc.Status.Replicas), int64(rc.Status.ReadyReplicas), age(rc.CreationTimestamp), c, i, labelsString(rc.Spec.Selector)}
	})
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func replicaColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{nameCol, col("Desired", "integer", 0, "Number of desired pods."), col("Current", "integer", 0, "Number of actual replicas."), col("Ready", "integer", 0, "The number of ready replicas."), ageCol,
		col("Containers", "string", 1, "Names of each container in the template."), col("Images", "string", 1, "Images referenced by each container in the template."), col("Selector", "string", 1, "Label selector for pods.")}
}

func endpointsTable() ([]metav1.TableColumnDefinition, func(runtime.Object, bool) []any) {
	return []metav1.TableColumnDefinition{nameCol, col("Endpoints", "string", 0, "Endpoints of the service."), ageCol}, func(o runtime.Object, _ bool) []any {
		e := o.(*corev1.Endpoints)
		var list []string
		for _, s := range e.Subsets {
			for _, a := range s.Addresses {
				if len(s.Ports) == 0 {
					list = append(list, a.IP)
				}
				for _, p := range s.Ports {
					list = append(list, fmt.Sprintf("%s:%d", a.IP, p.Port))
				}
			}
		}
		return []any{e.Name, joinLimited(list, 3), age(e.CreationTimestamp)}
	}
}

func serviceAccountTable() ([]metav1.TableColumnDefinition, func(runtime.Object, bool) []any) {
	return []metav1.TableColumnDefinition{nameCol, col("Secrets", "string", 0, ""), ageCol}, func(o runtime.Object, _ bool) []any {
		sa := o.(*corev1.ServiceAccount)
		return []any{sa.Name, int64(len(sa.Secrets)), age(sa.CreationTimestamp)}
	}
}

func quotaTable() ([]metav1.TableColumnDefinition, func(runtime.Object, bool) []any) {
	return []metav1.TableColumnDefinition{nameCol, ageCol, col("Request", "string", 0, ""), col("Limit", "string", 0, "")}, func(o runtime.Object, _ bool) []any {
		q := o.(*corev1.ResourceQuota)
		var req, lim []string
		names := sets.List(sets.KeySet(q.Spec.Hard))
		for _, n := range names {
			used := q.Status.Used[n]
			hard := q.Spec.Hard[n]
			s := fmt.Sprintf("%s: %s/%s", n, used.String(), hard.String())
			if strings.HasPrefix(string(n), "limits.") {
				lim = append(lim, s)
			} else {
				req = append(req, s)
			}
		}
		return []any{q.Name, age(q.CreationTimestamp), strings.Join(req, ", "), strings.Join(lim, ", ")}
	}
}

var _ = apivalidation.NameIsDNSLabel

// finalizePart is namespaces/finalize: it writes spec.finalizers only, the
// finalizers the namespace controller removes once the content is gone.
func finalizePart(req, cur runtime.Object) (runtime.Object, field.ErrorList) {
	in, old := req.(*corev1.Namespace), cur.(*corev1.Namespace)
	next := old.DeepCopy()
	next.Spec.Finalizers = in.Spec.Finalizers
	var errs field.ErrorList
	for i, f := range next.Spec.Finalizers {
		for _, msg := range validation.IsQualifiedName(string(f)) {
			errs = append(errs, field.Invalid(field.NewPath("spec", "finalizers").Index(i), f, msg))
		}
	}
	return next, errs
}
