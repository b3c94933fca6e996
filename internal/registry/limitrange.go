package registry

import corev1 "k8s.io/api/core/v1"

func limitRangeStrategy(r *Resource) {
	r.ShortNames = []string{"limits"}
	r.Default = asDefault(func(lr *corev1.LimitRange) {
		for i := range lr.Spec.Limits {
			defaultLimitRangeItem(&lr.Spec.Limits[i])
		}
	})
}

// defaultLimitRangeItem is upstream's defaulting of a Container item: a
// max is also the default limit, and a default limit (else a min) is also
// the default request, so a container that names nothing gets them.
func defaultLimitRangeItem(item *corev1.LimitRangeItem) {
	if item.Type != corev1.LimitTypeContainer {
		return
	}
	fill := func(dst *corev1.ResourceList, src corev1.ResourceList) {
		for k, v := range src {
			if _, ok := (*dst)[k]; ok {
				continue
			}
			if *dst == nil {
				*dst = corev1.ResourceList{}
			}
			(*dst)[k] = v.DeepCopy()
		}
	}
	fill(&item.Default, item.Max)
	fill(&item.DefaultRequest, item.Default)
	fill(&item.DefaultRequest, item.Min)
}
