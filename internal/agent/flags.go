package agent

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ParseLabels reads --node-labels: key=value pairs.
func ParseLabels(items []string) (map[string]string, error) {
	out := map[string]string{}
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok {
			return nil, fmt.Errorf("--node-labels %q: want key=value", it)
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("--node-labels %q: %s", it, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, fmt.Errorf("--node-labels %q: %s", it, strings.Join(errs, "; "))
		}
		out[k] = v
	}
	return out, nil
}

// ParseTaints reads --register-with-taints: key[=value]:Effect.
func ParseTaints(items []string) ([]v1.Taint, error) {
	var out []v1.Taint
	for _, it := range items {
		kv, effect, ok := strings.Cut(it, ":")
		if !ok {
			return nil, fmt.Errorf("--register-with-taints %q: want key[=value]:effect", it)
		}
		switch v1.TaintEffect(effect) {
		case v1.TaintEffectNoSchedule, v1.TaintEffectPreferNoSchedule, v1.TaintEffectNoExecute:
		default:
			return nil, fmt.Errorf("--register-with-taints %q: effect must be NoSchedule, PreferNoSchedule or NoExecute", it)
		}
		k, v, _ := strings.Cut(kv, "=")
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, fmt.Errorf("--register-with-taints %q: %s", it, strings.Join(errs, "; "))
		}
		out = append(out, v1.Taint{Key: k, Value: v, Effect: v1.TaintEffect(effect)})
	}
	return out, nil
}

// ParseReserved reads --kube-reserved and --system-reserved
// (cpu=100m,memory=256Mi,...) and adds them up.
func ParseReserved(lists ...[]string) (v1.ResourceList, error) {
	out := v1.ResourceList{}
	for _, items := range lists {
		for _, it := range items {
			k, v, ok := strings.Cut(it, "=")
			if !ok {
				return nil, fmt.Errorf("reserved resource %q: want name=quantity", it)
			}
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return nil, fmt.Errorf("reserved resource %q: %w", it, err)
			}
			name := v1.ResourceName(k)
			switch name {
			case v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage, v1.ResourcePods:
			default:
				return nil, fmt.Errorf("reserved resource %q: only cpu, memory, ephemeral-storage and pods", it)
			}
			sum := out[name]
			sum.Add(q)
			out[name] = sum
		}
	}
	return out, nil
}
