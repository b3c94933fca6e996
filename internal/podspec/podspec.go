// Package podspec holds what the API server and the node agent both know of
// a pod spec: upstream's v1 defaults, validation, the QoS class, and the
// preparation of a static pod, so the node agent needs no registry.
package podspec

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// Default applies upstream's v1 defaults to a pod spec (also inside
// every pod template).
func Default(s *corev1.PodSpec) {
	if s.DNSPolicy == "" {
		s.DNSPolicy = corev1.DNSClusterFirst
	}
	if s.RestartPolicy == "" {
		s.RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = ptr.To[int64](corev1.DefaultTerminationGracePeriodSeconds)
	}
	if s.SecurityContext == nil {
		s.SecurityContext = &corev1.PodSecurityContext{}
	}
	if s.SchedulerName == "" {
		s.SchedulerName = corev1.DefaultSchedulerName
	}
	if s.EnableServiceLinks == nil {
		s.EnableServiceLinks = ptr.To(corev1.DefaultEnableServiceLinks)
	}
	for i := range s.InitContainers {
		DefaultContainer(&s.InitContainers[i], s.HostNetwork)
	}
	for i := range s.Containers {
		DefaultContainer(&s.Containers[i], s.HostNetwork)
	}
	for i := range s.EphemeralContainers {
		c := (*corev1.Container)(&s.EphemeralContainers[i].EphemeralContainerCommon)
		DefaultContainer(c, s.HostNetwork)
	}
	for i := range s.Volumes {
		defaultVolume(&s.Volumes[i])
	}
}

func DefaultContainer(c *corev1.Container, hostNetwork bool) {
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = defaultPullPolicy(c.Image)
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
		if hostNetwork && c.Ports[i].HostPort == 0 {
			c.Ports[i].HostPort = c.Ports[i].ContainerPort
		}
	}
	for i := range c.Env {
		if vf := c.Env[i].ValueFrom; vf != nil && vf.FieldRef != nil && vf.FieldRef.APIVersion == "" {
			vf.FieldRef.APIVersion = "v1"
		}
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		defaultProbe(p)
	}
	// Limits without requests request the limit, as upstream defaults.
	if len(c.Resources.Limits) > 0 {
		if c.Resources.Requests == nil {
			c.Resources.Requests = corev1.ResourceList{}
		}
		for k, v := range c.Resources.Limits {
			if _, ok := c.Resources.Requests[k]; !ok {
				c.Resources.Requests[k] = v.DeepCopy()
			}
		}
	}
}

// defaultPullPolicy is Always for :latest or untagged images, else
// IfNotPresent.
func defaultPullPolicy(image string) corev1.PullPolicy {
	if strings.Contains(image, "@") {
		return corev1.PullIfNotPresent
	}
	last := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndex(last, ":")
	if i < 0 || last[i+1:] == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

func defaultProbe(p *corev1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	if h := p.HTTPGet; h != nil {
		if h.Path == "" {
			h.Path = "/"
		}
		if h.Scheme == "" {
			h.Scheme = corev1.URISchemeHTTP
		}
	}
}

func defaultVolume(v *corev1.Volume) {
	mode := ptr.To[int32](corev1.ConfigMapVolumeSourceDefaultMode)
	switch {
	case v.ConfigMap != nil && v.ConfigMap.DefaultMode == nil:
		v.ConfigMap.DefaultMode = mode
	case v.Secret != nil && v.Secret.DefaultMode == nil:
		v.Secret.DefaultMode = mode
	case v.DownwardAPI != nil && v.DownwardAPI.DefaultMode == nil:
		v.DownwardAPI.DefaultMode = mode
	case v.Projected != nil && v.Projected.DefaultMode == nil:
		v.Projected.DefaultMode = mode
	case v.HostPath != nil && v.HostPath.Type == nil:
		v.HostPath.Type = ptr.To(corev1.HostPathUnset)
	case v.Image != nil && v.Image.PullPolicy == "":
		v.Image.PullPolicy = defaultPullPolicy(v.Image.Reference)
	}
	if v.VolumeSource == (corev1.VolumeSource{}) {
		v.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
}

var (
	restartPolicies = sets.New(corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever)
	dnsPolicies     = sets.New(corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet, corev1.DNSDefault, corev1.DNSNone)
	pullPolicies    = sets.New(corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever)
	// Protocols are the port protocols a pod or a Service may name.
	Protocols = sets.New(corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP)
)

// Validate checks a pod spec the way upstream does for the fields a
// user most often gets wrong.
func Validate(s *corev1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(s.Containers) == 0 {
		errs = append(errs, field.Required(p.Child("containers"), ""))
	}
	vols := sets.New[string]()
	for i, v := range s.Volumes {
		vp := p.Child("volumes").Index(i)
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			errs = append(errs, field.Invalid(vp.Child("name"), v.Name, msg))
		}
		if vols.Has(v.Name) {
			errs = append(errs, field.Duplicate(vp.Child("name"), v.Name))
		}
		vols.Insert(v.Name)
		if v.HostPath != nil && !strings.HasPrefix(v.HostPath.Path, "/") && v.HostPath.Path != "" {
			errs = append(errs, field.Invalid(vp.Child("hostPath", "path"), v.HostPath.Path, "must be an absolute path"))
		}
		if v.Projected != nil {
			paths := map[string]bool{}
			for j, src := range v.Projected.Sources {
				if src.PodCertificate != nil {
					errs = append(errs, validateCertificateProjection(src.PodCertificate, vp.Child("projected", "sources").Index(j).Child("podCertificate"), paths)...)
				}
			}
		}
	}
	names := sets.New[string]()
	errs = append(errs, validateContainers(s.InitContainers, p.Child("initContainers"), names, vols, true)...)
	errs = append(errs, validateContainers(s.Containers, p.Child("containers"), names, vols, false)...)
	if !restartPolicies.Has(s.RestartPolicy) {
		errs = append(errs, field.NotSupported(p.Child("restartPolicy"), s.RestartPolicy, sets.List(restartPolicies)))
	}
	if !dnsPolicies.Has(s.DNSPolicy) {
		errs = append(errs, field.NotSupported(p.Child("dnsPolicy"), s.DNSPolicy, sets.List(dnsPolicies)))
	}
	if s.DNSPolicy == corev1.DNSNone && (s.DNSConfig == nil || len(s.DNSConfig.Nameservers) == 0) {
		errs = append(errs, field.Required(p.Child("dnsConfig", "nameservers"), "must provide at least one DNS nameserver when dnsPolicy is None"))
	}
	if g := s.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		errs = append(errs, field.Invalid(p.Child("terminationGracePeriodSeconds"), *g, "must be greater than or equal to 0"))
	}
	if d := s.ActiveDeadlineSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), *d, "must be between 1 and 2147483647, inclusive"))
	}
	if s.NodeSelector != nil {
		errs = append(errs, metav1validation.ValidateLabels(s.NodeSelector, p.Child("nodeSelector"))...)
	}
	if s.ServiceAccountName != "" {
		for _, msg := range apivalidation.NameIsDNSSubdomain(s.ServiceAccountName, false) {
			errs = append(errs, field.Invalid(p.Child("serviceAccountName"), s.ServiceAccountName, msg))
		}
	}
	if s.Hostname != "" {
		for _, msg := range validation.IsDNS1123Label(s.Hostname) {
			errs = append(errs, field.Invalid(p.Child("hostname"), s.Hostname, msg))
		}
	}
	if s.SecurityContext != nil {
		errs = append(errs, validateSysctls(s.SecurityContext.Sysctls, s.HostNetwork, p.Child("securityContext", "sysctls"))...)
	}
	for i, t := range s.Tolerations {
		tp := p.Child("tolerations").Index(i)
		if t.Operator == corev1.TolerationOpExists && t.Value != "" {
			errs = append(errs, field.Invalid(tp.Child("operator"), t.Value, "value must be empty when `operator` is 'Exists'"))
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			errs = append(errs, field.Invalid(tp.Child("operator"), t.Operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
		}
	}
	return errs
}

// ValidateContainerName checks a container's name: a DNS label, unique
// among the pod's containers of every kind (names collects them).
func ValidateContainerName(name string, p *field.Path, names sets.Set[string]) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(name) {
		errs = append(errs, field.Invalid(p, name, msg))
	}
	if names.Has(name) {
		errs = append(errs, field.Duplicate(p, name))
	}
	names.Insert(name)
	return errs
}

func validateContainers(cs []corev1.Container, p *field.Path, names, vols sets.Set[string], init bool) field.ErrorList {
	var errs field.ErrorList
	for i, c := range cs {
		cp := p.Index(i)
		errs = append(errs, ValidateContainerName(c.Name, cp.Child("name"), names)...)
		if strings.TrimSpace(c.Image) == "" {
			errs = append(errs, field.Required(cp.Child("image"), ""))
		} else if c.Image != strings.TrimSpace(c.Image) {
			errs = append(errs, field.Invalid(cp.Child("image"), c.Image, "must not have leading or trailing whitespace"))
		}
		if c.ImagePullPolicy != "" && !pullPolicies.Has(c.ImagePullPolicy) {
			errs = append(errs, field.NotSupported(cp.Child("imagePullPolicy"), c.ImagePullPolicy, sets.List(pullPolicies)))
		}
		ports := sets.New[string]()
		for j, port := range c.Ports {
			pp := cp.Child("ports").Index(j)
			errs = append(errs, ValidatePortNumber(port.ContainerPort, pp.Child("containerPort"))...)
			if port.HostPort != 0 {
				errs = append(errs, ValidatePortNumber(port.HostPort, pp.Child("hostPort"))...)
			}
			if port.Name != "" {
				for _, msg := range validation.IsValidPortName(port.Name) {
					errs = append(errs, field.Invalid(pp.Child("name"), port.Name, msg))
				}
				if ports.Has(port.Name) {
					errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
				}
				ports.Insert(port.Name)
			}
			if !Protocols.Has(port.Protocol) {
				errs = append(errs, field.NotSupported(pp.Child("protocol"), port.Protocol, sets.List(Protocols)))
			}
		}
		for j, e := range c.Env {
			if e.Name == "" {
				errs = append(errs, field.Required(cp.Child("env").Index(j).Child("name"), ""))
			}
		}
		for j, m := range c.VolumeMounts {
			mp := cp.Child("volumeMounts").Index(j)
			if !vols.Has(m.Name) {
				errs = append(errs, field.NotFound(mp.Child("name"), m.Name))
			}
			if m.MountPath == "" {
				errs = append(errs, field.Required(mp.Child("mountPath"), ""))
			}
		}
		errs = append(errs, validateResources(c.Resources, cp.Child("resources"))...)
		if init && c.RestartPolicy == nil {
			for _, probe := range []struct {
				p    *corev1.Probe
				name string
			}{{c.LivenessProbe, "livenessProbe"}, {c.ReadinessProbe, "readinessProbe"}, {c.StartupProbe, "startupProbe"}} {
				if probe.p != nil {
					errs = append(errs, field.Forbidden(cp.Child(probe.name), "may not be set for init containers without restartPolicy=Always"))
				}
			}
		}
		if !init && c.RestartPolicy != nil {
			errs = append(errs, field.Forbidden(cp.Child("restartPolicy"), "may not be set for non-init containers"))
		}
		for _, probe := range []struct {
			p    *corev1.Probe
			name string
		}{{c.LivenessProbe, "livenessProbe"}, {c.ReadinessProbe, "readinessProbe"}, {c.StartupProbe, "startupProbe"}} {
			errs = append(errs, validateProbe(probe.p, cp.Child(probe.name))...)
		}
	}
	return errs
}

func validateProbe(p *corev1.Probe, fp *field.Path) field.ErrorList {
	if p == nil {
		return nil
	}
	var errs field.ErrorList
	n := 0
	if p.Exec != nil {
		n++
	}
	if p.HTTPGet != nil {
		n++
		errs = append(errs, ValidatePortOrName(p.HTTPGet.Port, fp.Child("httpGet", "port"))...)
	}
	if p.TCPSocket != nil {
		n++
		errs = append(errs, ValidatePortOrName(p.TCPSocket.Port, fp.Child("tcpSocket", "port"))...)
	}
	if p.GRPC != nil {
		n++
		errs = append(errs, ValidatePortNumber(p.GRPC.Port, fp.Child("grpc", "port"))...)
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(fp, "must specify a handler type"))
	case n > 1:
		errs = append(errs, field.Forbidden(fp, "may not specify more than 1 handler type"))
	}
	for name, v := range map[string]int32{"initialDelaySeconds": p.InitialDelaySeconds, "timeoutSeconds": p.TimeoutSeconds, "periodSeconds": p.PeriodSeconds, "successThreshold": p.SuccessThreshold, "failureThreshold": p.FailureThreshold} {
		if v < 0 {
			errs = append(errs, field.Invalid(fp.Child(name), v, "must be greater than or equal to 0"))
		}
	}
	return errs
}

func ValidatePortOrName(port intstr.IntOrString, fp *field.Path) field.ErrorList {
	if port.Type == intstr.Int {
		return ValidatePortNumber(port.IntVal, fp)
	}
	var errs field.ErrorList
	for _, msg := range validation.IsValidPortName(port.StrVal) {
		errs = append(errs, field.Invalid(fp, port.StrVal, msg))
	}
	return errs
}

func ValidatePortNumber(port int32, fp *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsValidPortNum(int(port)) {
		errs = append(errs, field.Invalid(fp, port, msg))
	}
	return errs
}

func validateResources(r corev1.ResourceRequirements, fp *field.Path) field.ErrorList {
	var errs field.ErrorList
	for name, q := range r.Limits {
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(fp.Child("limits").Key(string(name)), q.String(), "must be greater than or equal to 0"))
		}
	}
	for name, q := range r.Requests {
		rp := fp.Child("requests").Key(string(name))
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(rp, q.String(), "must be greater than or equal to 0"))
		}
		if l, ok := r.Limits[name]; ok && q.Cmp(l) > 0 {
			errs = append(errs, field.Invalid(rp, q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, l.String())))
		}
	}
	return errs
}

// QOSClass computes a pod's quality-of-service class from its requests and
// limits, as upstream does.
func QOSClass(s *corev1.PodSpec) corev1.PodQOSClass {
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	guaranteed := true
	all := append(append([]corev1.Container{}, s.InitContainers...), s.Containers...)
	for _, c := range all {
		for name, q := range c.Resources.Requests {
			if name == corev1.ResourceCPU || name == corev1.ResourceMemory {
				if q.Sign() > 0 {
					add(requests, name, q)
				}
			}
		}
		seen := 0
		for name, q := range c.Resources.Limits {
			if name == corev1.ResourceCPU || name == corev1.ResourceMemory {
				if q.Sign() > 0 {
					add(limits, name, q)
					seen++
				}
			}
		}
		if seen != 2 {
			guaranteed = false
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	if guaranteed {
		for name, r := range requests {
			if l, ok := limits[name]; !ok || l.Cmp(r) != 0 {
				guaranteed = false
			}
		}
	}
	if guaranteed && len(limits) == 2 {
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

func add(l corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
	if cur, ok := l[name]; ok {
		cur.Add(q)
		l[name] = cur
		return
	}
	l[name] = q.DeepCopy()
}

// ValidateTemplate checks a workload's pod template against its selector.
func ValidateTemplate(t *corev1.PodTemplateSpec, p *field.Path) field.ErrorList {
	errs := metav1validation.ValidateLabels(t.Labels, p.Child("metadata", "labels"))
	errs = append(errs, Validate(&t.Spec, p.Child("spec"))...)
	return errs
}

// sysctlName is upstream's sysctl name pattern: dot- or slash-separated
// segments of lower-case letters, digits, '-' and '_' that start and end
// with a letter or digit.
var sysctlName = regexp.MustCompile(`^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$`)

// validateSysctls checks pod sysctl names as upstream's validation does.
func validateSysctls(sysctls []corev1.Sysctl, hostNetwork bool, fp *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for i, s := range sysctls {
		np := fp.Index(i).Child("name")
		switch {
		case s.Name == "":
			errs = append(errs, field.Required(np, ""))
		case len(s.Name) > 253 || !sysctlName.MatchString(s.Name):
			errs = append(errs, field.Invalid(np, s.Name, "must have at most 253 characters and match regex "+sysctlName.String()))
		case seen.Has(strings.ReplaceAll(s.Name, "/", ".")):
			errs = append(errs, field.Duplicate(np, s.Name))
		case hostNetwork && (strings.HasPrefix(s.Name, "net.") || strings.HasPrefix(s.Name, "net/")):
			errs = append(errs, field.Invalid(np, s.Name, "may not be specified when 'hostNetwork' is true"))
		}
		seen.Insert(strings.ReplaceAll(s.Name, "/", "."))
	}
	return errs
}

// Lifetimes of pod certificates, as upstream's certificates API fixes them.
const (
	CertMinMaxExpiration        = 3600              // one hour
	CertDefaultMaxExpiration    = 24 * 60 * 60      // one day
	CertMaxMaxExpiration        = 91 * 24 * 60 * 60 // 91 days
	CertKubernetesMaxExpiration = 24 * 60 * 60      // kubernetes.io signers
)

// CertKeyTypes are the keys a pod may ask for and a request may
// carry.
var CertKeyTypes = []string{"RSA3072", "RSA4096", "ECDSAP256", "ECDSAP384", "ECDSAP521", "ED25519"}

// ValidateSignerName is upstream's form: a DNS subdomain, a slash, a path.
func ValidateSignerName(p *field.Path, name string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	domain, rest, ok := strings.Cut(name, "/")
	if !ok || domain == "" || rest == "" || len(validation.IsDNS1123Subdomain(domain)) > 0 {
		return field.ErrorList{field.Invalid(p, name, "must be a fully qualified domain and path of the form 'example.com/signer-name'")}
	}
	return nil
}

func KubernetesSigner(name string) bool {
	return strings.HasPrefix(name, "kubernetes.io/") || strings.Contains(strings.SplitN(name, "/", 2)[0], ".kubernetes.io")
}

// validateCertificateProjection checks a projected volume's
// podCertificate source as upstream's pod validation does.
func validateCertificateProjection(pc *corev1.PodCertificateProjection, p *field.Path, paths map[string]bool) field.ErrorList {
	errs := ValidateSignerName(p.Child("signerName"), pc.SignerName)
	if !slices.Contains(CertKeyTypes, pc.KeyType) {
		errs = append(errs, field.NotSupported(p.Child("keyType"), pc.KeyType, CertKeyTypes))
	}
	if m := pc.MaxExpirationSeconds; m != nil {
		if *m < CertMinMaxExpiration {
			errs = append(errs, field.Invalid(p.Child("maxExpirationSeconds"), *m, fmt.Sprintf("if provided, maxExpirationSeconds must be >= %d", CertMinMaxExpiration)))
		}
		max := int32(CertMaxMaxExpiration)
		if KubernetesSigner(pc.SignerName) {
			max = CertKubernetesMaxExpiration
		}
		if *m > max {
			errs = append(errs, field.Invalid(p.Child("maxExpirationSeconds"), *m, fmt.Sprintf("if provided, maxExpirationSeconds must be <= %d", max)))
		}
	}
	n := 0
	for _, f := range []struct{ name, path string }{
		{"credentialBundlePath", pc.CredentialBundlePath}, {"keyPath", pc.KeyPath}, {"certificateChainPath", pc.CertificateChainPath},
	} {
		if f.path == "" {
			continue
		}
		n++
		if strings.HasPrefix(f.path, "/") || strings.HasPrefix(f.path, "..") || strings.Contains(f.path, "/../") {
			errs = append(errs, field.Invalid(p.Child(f.name), f.path, "must be a relative path without '..'"))
		}
		if paths[f.path] {
			errs = append(errs, field.Invalid(p.Child(f.name), f.path, "conflicting duplicate paths"))
		}
		paths[f.path] = true
	}
	if n == 0 {
		errs = append(errs, field.Required(p, "specify at least one of credentialBundlePath, keyPath, and certificateChainPath"))
	}
	return errs
}

// Prepare defaults and validates a pod that does not pass through the
// API server: a node agent's static pod read from a manifest file. It sets
// the status fields the API would (phase Pending, QoS class).
func Prepare(p *corev1.Pod) field.ErrorList {
	Default(&p.Spec)
	if errs := Validate(&p.Spec, field.NewPath("spec")); len(errs) > 0 {
		return errs
	}
	p.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: QOSClass(&p.Spec)}
	return nil
}
