// Package config reads the scheduler's configuration file (shaped like
// KubeSchedulerConfiguration v1), applies upstream's defaults and checks
// it, naming the offending field in every error.
package config

import (
	"fmt"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	configv1 "k8s.io/kube-scheduler/config/v1"
	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/scheduler/plugins"
)

// APIVersion is the only configuration version accepted.
const APIVersion = "kubescheduler.config.k8s.io/v1"

// DefaultSchedulerName is the profile pods get without spec.schedulerName.
const DefaultSchedulerName = "default-scheduler"

// Config is the validated configuration.
type Config struct {
	Parallelism int
	// Percentage is percentageOfNodesToScore; 0 means adaptive.
	Percentage     int32
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Profiles       []configv1.KubeSchedulerProfile
}

// Default is the configuration without a file: one default-scheduler
// profile with the default plugins.
func Default() *Config {
	c, err := parse(&configv1.KubeSchedulerConfiguration{})
	if err != nil {
		panic(err) // the defaults are valid by construction
	}
	return c
}

// Load reads path; "" gives Default.
func Load(path string) (*Config, error) {
	if path == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scheduler config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("scheduler config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes and validates a configuration document.
func Parse(data []byte) (*Config, error) {
	var raw configv1.KubeSchedulerConfiguration
	if err := yaml.UnmarshalStrict(data, &raw); err != nil {
		return nil, err
	}
	if raw.APIVersion != APIVersion {
		return nil, fmt.Errorf("apiVersion: Unsupported value: %q: supported values: %q", raw.APIVersion, APIVersion)
	}
	if raw.Kind != "KubeSchedulerConfiguration" {
		return nil, fmt.Errorf("kind: Unsupported value: %q: supported values: \"KubeSchedulerConfiguration\"", raw.Kind)
	}
	return parse(&raw)
}

func parse(raw *configv1.KubeSchedulerConfiguration) (*Config, error) {
	c := &Config{Parallelism: 16, InitialBackoff: time.Second, MaxBackoff: 10 * time.Second}
	if p := raw.Parallelism; p != nil {
		if *p <= 0 {
			return nil, fmt.Errorf("parallelism: Invalid value: %d: should be an integer value greater than zero", *p)
		}
		c.Parallelism = int(*p)
	}
	if p := raw.PercentageOfNodesToScore; p != nil {
		if *p < 0 || *p > 100 {
			return nil, fmt.Errorf("percentageOfNodesToScore: Invalid value: %d: not in valid range [0-100]", *p)
		}
		c.Percentage = *p
	}
	if s := raw.PodInitialBackoffSeconds; s != nil {
		if *s <= 0 {
			return nil, fmt.Errorf("podInitialBackoffSeconds: Invalid value: %d: must be greater than 0", *s)
		}
		c.InitialBackoff = time.Duration(*s) * time.Second
	}
	if s := raw.PodMaxBackoffSeconds; s != nil {
		c.MaxBackoff = time.Duration(*s) * time.Second
	}
	if c.MaxBackoff < c.InitialBackoff {
		return nil, fmt.Errorf("podMaxBackoffSeconds: Invalid value: %d: must be greater than or equal to podInitialBackoffSeconds", int64(c.MaxBackoff/time.Second))
	}
	if len(raw.Extenders) > 0 {
		return nil, fmt.Errorf("extenders: Forbidden: scheduler extenders are not supported by skiff")
	}
	c.Profiles = raw.Profiles
	if len(c.Profiles) == 0 {
		c.Profiles = []configv1.KubeSchedulerProfile{{}}
	}
	seen := map[string]bool{}
	for i := range c.Profiles {
		p := &c.Profiles[i]
		path := fmt.Sprintf("profiles[%d]", i)
		if p.SchedulerName == nil {
			name := DefaultSchedulerName
			p.SchedulerName = &name
		}
		if *p.SchedulerName == "" {
			return nil, fmt.Errorf("%s.schedulerName: Required value", path)
		}
		if seen[*p.SchedulerName] {
			return nil, fmt.Errorf("%s.schedulerName: Duplicate value: %q", path, *p.SchedulerName)
		}
		seen[*p.SchedulerName] = true
		if v := p.PercentageOfNodesToScore; v != nil && (*v < 0 || *v > 100) {
			return nil, fmt.Errorf("%s.percentageOfNodesToScore: Invalid value: %d: not in valid range [0-100]", path, *v)
		}
		if err := validatePlugins(path, p); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// PointSets returns the profile's plugin sets by extension point name.
func PointSets(p *configv1.Plugins) map[string]*configv1.PluginSet {
	if p == nil {
		return map[string]*configv1.PluginSet{}
	}
	return map[string]*configv1.PluginSet{
		"multiPoint": &p.MultiPoint, "preEnqueue": &p.PreEnqueue, "queueSort": &p.QueueSort,
		"preFilter": &p.PreFilter, "filter": &p.Filter, "postFilter": &p.PostFilter,
		"preScore": &p.PreScore, "score": &p.Score, "reserve": &p.Reserve, "permit": &p.Permit,
		"preBind": &p.PreBind, "bind": &p.Bind, "postBind": &p.PostBind,
	}
}

func validatePlugins(path string, p *configv1.KubeSchedulerProfile) error {
	registry := plugins.Registry()
	for point, set := range PointSets(p.Plugins) {
		for j, pl := range set.Enabled {
			f := fmt.Sprintf("%s.plugins.%s.enabled[%d]", path, point, j)
			if _, ok := registry[pl.Name]; !ok {
				if plugins.Unavailable[pl.Name] {
					return fmt.Errorf("%s.name: Invalid value: %q: plugin is not available in skiff", f, pl.Name)
				}
				return fmt.Errorf("%s.name: Invalid value: %q: unknown plugin", f, pl.Name)
			}
			if pl.Weight != nil && (*pl.Weight < 0 || *pl.Weight > 100) {
				return fmt.Errorf("%s.weight: Invalid value: %d: must be in [0, 100]", f, *pl.Weight)
			}
		}
		for j, pl := range set.Disabled {
			if _, ok := registry[pl.Name]; !ok && pl.Name != "*" && !plugins.Unavailable[pl.Name] {
				return fmt.Errorf("%s.plugins.%s.disabled[%d].name: Invalid value: %q: unknown plugin", path, point, j, pl.Name)
			}
		}
	}
	seen := map[string]bool{}
	for j, pc := range p.PluginConfig {
		f := fmt.Sprintf("%s.pluginConfig[%d]", path, j)
		factory, ok := registry[pc.Name]
		if !ok {
			return fmt.Errorf("%s.name: Invalid value: %q: unknown plugin", f, pc.Name)
		}
		if seen[pc.Name] {
			return fmt.Errorf("%s.name: Duplicate value: %q", f, pc.Name)
		}
		seen[pc.Name] = true
		// Factories only keep the handle, so building with none checks
		// the arguments without a running scheduler.
		if _, err := factory(argsOf(pc.Args), nil); err != nil {
			return fmt.Errorf("%s.args: %w", f, err)
		}
	}
	return nil
}

// argsOf strips apiVersion/kind from plugin arguments, which upstream
// files carry (e.g. kind: NodeResourcesFitArgs).
func argsOf(raw runtime.RawExtension) runtime.RawExtension {
	if len(raw.Raw) == 0 {
		return raw
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw.Raw, &m); err != nil {
		return raw
	}
	delete(m, "apiVersion")
	delete(m, "kind")
	out, err := yaml.Marshal(m)
	if err != nil {
		return raw
	}
	return runtime.RawExtension{Raw: out}
}

// Args returns a profile's arguments for a plugin.
func Args(p *configv1.KubeSchedulerProfile, name string) runtime.RawExtension {
	for _, pc := range p.PluginConfig {
		if pc.Name == name {
			return argsOf(pc.Args)
		}
	}
	return runtime.RawExtension{}
}
