package config

import (
	"fmt"
	"slices"

	configv1 "k8s.io/kube-scheduler/config/v1"

	"github.com/skiff-sh/skiff/internal/scheduler/framework"
	"github.com/skiff-sh/skiff/internal/scheduler/plugins"
)

type entry struct {
	name   string
	weight int32
}

// resolve applies enabled and disabled lists to a starting list: "*"
// disables every earlier plugin; enabling a listed plugin replaces its
// weight.
func resolve(start []entry, set configv1.PluginSet) []entry {
	out := slices.Clone(start)
	for _, d := range set.Disabled {
		if d.Name == "*" {
			out = nil
			break
		}
		out = slices.DeleteFunc(out, func(e entry) bool { return e.name == d.Name })
	}
	for _, e := range set.Enabled {
		w := int32(0)
		if e.Weight != nil {
			w = *e.Weight
		}
		if i := slices.IndexFunc(out, func(x entry) bool { return x.name == e.Name }); i >= 0 {
			if w != 0 {
				out[i].weight = w
			}
			continue
		}
		out = append(out, entry{e.Name, w})
	}
	return out
}

// Build instantiates a profile's plugins against h and assembles the
// framework.
func Build(p *configv1.KubeSchedulerProfile, h framework.Handle) (*framework.Framework, error) {
	var defaults []entry
	for _, d := range plugins.Defaults {
		defaults = append(defaults, entry{d.Name, d.Weight})
	}
	sets := PointSets(p.Plugins)
	multi := defaults
	if ms := sets["multiPoint"]; ms != nil {
		multi = resolve(defaults, *ms)
	}
	registry := plugins.Registry()
	instances := map[string]framework.Plugin{}
	get := func(name string) (framework.Plugin, error) {
		if pl, ok := instances[name]; ok {
			return pl, nil
		}
		pl, err := registry[name](Args(p, name), h)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: %w", name, err)
		}
		instances[name] = pl
		return pl, nil
	}
	// point lists the plugins of one extension point: the multi-point
	// plugins implementing it, then that point's own enabled/disabled.
	point := func(name string, implements func(framework.Plugin) bool) ([]entry, error) {
		var start []entry
		for _, e := range multi {
			pl, err := get(e.name)
			if err != nil {
				return nil, err
			}
			if implements(pl) {
				start = append(start, e)
			}
		}
		list := start
		if s := sets[name]; s != nil {
			list = resolve(start, *s)
		}
		for _, e := range list {
			pl, err := get(e.name)
			if err != nil {
				return nil, err
			}
			if !implements(pl) {
				return nil, fmt.Errorf("profiles: plugin %q does not implement the %s extension point", e.name, name)
			}
		}
		return list, nil
	}
	f := &framework.Framework{ProfileName: *p.SchedulerName, Plugins: instances, Handle: h}
	if p.PercentageOfNodesToScore != nil {
		f.PercentageOfNodesToScore = *p.PercentageOfNodesToScore
	}
	var err error
	add := func(name string, implements func(framework.Plugin) bool, put func(framework.Plugin, int32)) {
		if err != nil {
			return
		}
		var list []entry
		if list, err = point(name, implements); err != nil {
			return
		}
		for _, e := range list {
			put(instances[e.name], e.weight)
		}
	}
	add("queueSort", is[framework.QueueSortPlugin], func(pl framework.Plugin, _ int32) {
		f.QueueSort = pl.(framework.QueueSortPlugin)
	})
	add("preEnqueue", is[framework.PreEnqueuePlugin], func(pl framework.Plugin, _ int32) {
		f.PreEnqueue = append(f.PreEnqueue, pl.(framework.PreEnqueuePlugin))
	})
	add("preFilter", is[framework.PreFilterPlugin], func(pl framework.Plugin, _ int32) {
		f.PreFilter = append(f.PreFilter, pl.(framework.PreFilterPlugin))
	})
	add("filter", is[framework.FilterPlugin], func(pl framework.Plugin, _ int32) {
		f.Filter = append(f.Filter, pl.(framework.FilterPlugin))
	})
	add("postFilter", is[framework.PostFilterPlugin], func(pl framework.Plugin, _ int32) {
		f.PostFilter = append(f.PostFilter, pl.(framework.PostFilterPlugin))
	})
	add("preScore", is[framework.PreScorePlugin], func(pl framework.Plugin, _ int32) {
		f.PreScore = append(f.PreScore, pl.(framework.PreScorePlugin))
	})
	add("score", is[framework.ScorePlugin], func(pl framework.Plugin, w int32) {
		if w == 0 {
			w = 1
		}
		f.Score = append(f.Score, framework.WeightedScore{ScorePlugin: pl.(framework.ScorePlugin), Weight: int64(w)})
	})
	add("reserve", is[framework.ReservePlugin], func(pl framework.Plugin, _ int32) {
		f.Reserve = append(f.Reserve, pl.(framework.ReservePlugin))
	})
	add("permit", is[framework.PermitPlugin], func(pl framework.Plugin, _ int32) {
		f.Permit = append(f.Permit, pl.(framework.PermitPlugin))
	})
	add("preBind", is[framework.PreBindPlugin], func(pl framework.Plugin, _ int32) {
		f.PreBind = append(f.PreBind, pl.(framework.PreBindPlugin))
	})
	add("bind", is[framework.BindPlugin], func(pl framework.Plugin, _ int32) {
		f.Bind = append(f.Bind, pl.(framework.BindPlugin))
	})
	add("postBind", is[framework.PostBindPlugin], func(pl framework.Plugin, _ int32) {
		f.PostBind = append(f.PostBind, pl.(framework.PostBindPlugin))
	})
	if err != nil {
		return nil, err
	}
	if f.QueueSort == nil {
		return nil, fmt.Errorf("profile %s: no queueSort plugin enabled", f.ProfileName)
	}
	if len(f.Bind) == 0 {
		return nil, fmt.Errorf("profile %s: no bind plugin enabled", f.ProfileName)
	}
	return f, nil
}

func is[T any](p framework.Plugin) bool {
	_, ok := p.(T)
	return ok
}
