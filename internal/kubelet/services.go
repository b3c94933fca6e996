package kubelet

import (
	"fmt"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// serviceEnv is the Docker-links style environment of the Services a pod
// sees: those of its namespace (unless enableServiceLinks is false) and
// the API's own "kubernetes" Service.
func (k *Kubelet) serviceEnv(pod *v1.Pod) map[string]string {
	out := map[string]string{}
	if k.services == nil {
		return out
	}
	var svcs []*v1.Service
	if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
		svcs, _ = k.services.Services(pod.Namespace).List(labels.Everything())
	}
	if master, err := k.services.Services(v1.NamespaceDefault).Get("kubernetes"); err == nil {
		svcs = append(svcs, master)
	}
	for _, s := range svcs {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == v1.ClusterIPNone || len(s.Spec.Ports) == 0 {
			continue
		}
		for k, v := range serviceVars(s) {
			out[k] = v
		}
	}
	return out
}

// serviceVars are one Service's variables, e.g. REDIS_SERVICE_HOST.
func serviceVars(s *v1.Service) map[string]string {
	prefix := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
	ip := s.Spec.ClusterIP
	first := s.Spec.Ports[0]
	out := map[string]string{
		prefix + "_SERVICE_HOST": ip,
		prefix + "_SERVICE_PORT": strconv.Itoa(int(first.Port)),
		prefix + "_PORT":         fmt.Sprintf("%s://%s:%d", strings.ToLower(string(first.Protocol)), ip, first.Port),
	}
	for _, p := range s.Spec.Ports {
		if p.Name != "" {
			out[prefix+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))] = strconv.Itoa(int(p.Port))
		}
		proto := strings.ToUpper(string(p.Protocol))
		base := fmt.Sprintf("%s_PORT_%d_%s", prefix, p.Port, proto)
		out[base] = fmt.Sprintf("%s://%s:%d", strings.ToLower(proto), ip, p.Port)
		out[base+"_PROTO"] = strings.ToLower(proto)
		out[base+"_PORT"] = strconv.Itoa(int(p.Port))
		out[base+"_ADDR"] = ip
	}
	return out
}
