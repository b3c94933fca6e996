package kubelet

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// envSources are the objects a container's environment may reference.
type envSources struct {
	configMaps map[string]*v1.ConfigMap
	secrets    map[string]*v1.Secret
	podIP      string
	podIPs     []string
	hostIP     string
	// allocatable is the node's: limits.cpu, limits.memory and
	// limits.ephemeral-storage of a container without such a limit.
	allocatable v1.ResourceList
	// services are the variables of Services visible to the pod
	// (KUBERNETES_SERVICE_HOST, ...), lowest precedence.
	services map[string]string
}

// errEnvConfig is a configuration error that keeps a container from being
// created (CreateContainerConfigError).
type errEnvConfig struct{ msg string }

func (e errEnvConfig) Error() string { return e.msg }

// containerEnv resolves a container's environment in upstream's order:
// service variables, envFrom sources, then env entries, each env value
// expanded with $(VAR) against the variables defined before it.
func containerEnv(pod *v1.Pod, c *v1.Container, src envSources) ([]v1.EnvVar, error) {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for k, v := range src.services {
		set(k, v)
	}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm := src.configMaps[from.ConfigMapRef.Name]
			if cm == nil {
				if isOptional(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, errEnvConfig{fmt.Sprintf("configmap %q not found", from.ConfigMapRef.Name)}
			}
			for k, v := range cm.Data {
				set(from.Prefix+k, v)
			}
		case from.SecretRef != nil:
			s := src.secrets[from.SecretRef.Name]
			if s == nil {
				if isOptional(from.SecretRef.Optional) {
					continue
				}
				return nil, errEnvConfig{fmt.Sprintf("secret %q not found", from.SecretRef.Name)}
			}
			for k, v := range s.Data {
				set(from.Prefix+k, string(v))
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, vars))
			continue
		}
		v, ok, err := envValueFrom(pod, c, e.ValueFrom, src)
		if err != nil {
			return nil, err
		}
		if ok {
			set(e.Name, v)
		}
	}
	out := make([]v1.EnvVar, 0, len(order))
	for _, k := range order {
		out = append(out, v1.EnvVar{Name: k, Value: vars[k]})
	}
	return out, nil
}

func isOptional(p *bool) bool { return p != nil && *p }

func envValueFrom(pod *v1.Pod, c *v1.Container, from *v1.EnvVarSource, src envSources) (string, bool, error) {
	switch {
	case from.FieldRef != nil:
		v, err := podField(pod, from.FieldRef.FieldPath, src)
		return v, err == nil, err
	case from.ResourceFieldRef != nil:
		v, err := resourceField(pod, c, from.ResourceFieldRef, src.allocatable)
		return v, err == nil, err
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm := src.configMaps[ref.Name]
		if cm == nil {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, errEnvConfig{fmt.Sprintf("configmap %q not found", ref.Name)}
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, errEnvConfig{fmt.Sprintf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)}
		}
		return v, true, nil
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		s := src.secrets[ref.Name]
		if s == nil {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, errEnvConfig{fmt.Sprintf("secret %q not found", ref.Name)}
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, errEnvConfig{fmt.Sprintf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)}
		}
		return string(v), true, nil
	}
	return "", false, nil
}

// podField is a downward API field of the pod.
func podField(pod *v1.Pod, path string, src envSources) (string, error) {
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return src.hostIP, nil
	case "status.hostIPs":
		return src.hostIP, nil
	case "status.podIP":
		return src.podIP, nil
	case "status.podIPs":
		return strings.Join(src.podIPs, ","), nil
	}
	return "", errEnvConfig{fmt.Sprintf("unsupported fieldPath: %s", path)}
}

// subscript parses `prefix['key']`.
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok || !strings.HasSuffix(rest, "']") {
		return "", false
	}
	return strings.TrimSuffix(rest, "']"), true
}

// formatMap renders labels or annotations as the downward API does:
// key="value" lines, sorted.
func formatMap(m map[string]string) string {
	lines := make([]string, 0, len(m))
	for k, v := range m {
		lines = append(lines, k+"="+strconv.Quote(v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// resourceField is limits.cpu, requests.memory, ... of a container, in the
// divisor's units rounded up; an unset limit reports node allocatable as
// upstream does (here: the request, or 0 when there is none either).
func resourceField(pod *v1.Pod, c *v1.Container, ref *v1.ResourceFieldSelector, allocatable v1.ResourceList) (string, error) {
	target := c
	if ref.ContainerName != "" {
		target = nil
		for i := range pod.Spec.Containers {
			if pod.Spec.Containers[i].Name == ref.ContainerName {
				target = &pod.Spec.Containers[i]
			}
		}
		for i := range pod.Spec.InitContainers {
			if pod.Spec.InitContainers[i].Name == ref.ContainerName {
				target = &pod.Spec.InitContainers[i]
			}
		}
		if target == nil {
			return "", errEnvConfig{fmt.Sprintf("container %q not found for resourceFieldRef", ref.ContainerName)}
		}
	}
	kind, name, _ := strings.Cut(ref.Resource, ".")
	var q resource.Quantity
	var ok bool
	switch kind {
	case "limits":
		q, ok = target.Resources.Limits[v1.ResourceName(name)]
		if !ok {
			// As upstream: no limit means the node's allocatable.
			q, ok = allocatable[v1.ResourceName(name)]
		}
	case "requests":
		q, ok = target.Resources.Requests[v1.ResourceName(name)]
	default:
		return "", errEnvConfig{fmt.Sprintf("unsupported resource %q", ref.Resource)}
	}
	if !ok {
		return "0", nil
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == "cpu" {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

// expand replaces $(VAR) with defined variables; $$ escapes a dollar; a
// reference to an undefined variable stays as written (upstream's rules).
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
