package admission

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"sigs.k8s.io/yaml"
)

// admissionConfiguration is upstream's AdmissionConfiguration file.
type admissionConfiguration struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Plugins    []struct {
		Name          string         `json:"name"`
		Path          string         `json:"path,omitempty"`
		Configuration map[string]any `json:"configuration,omitempty"`
	} `json:"plugins"`
}

// podSecurityConfiguration is upstream's PodSecurityConfiguration.
type podSecurityConfiguration struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	PodSecurityConfig
}

// LoadConfig reads an AdmissionConfiguration file (upstream's
// --admission-control-config-file): the PodSecurity plugin's defaults and
// exemptions, inline or in a file of their own. Errors name the file and
// field.
func LoadConfig(path string) (Options, error) {
	var opts Options
	b, err := os.ReadFile(path)
	if err != nil {
		return opts, fmt.Errorf("admission configuration: %w", err)
	}
	var c admissionConfiguration
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return opts, fmt.Errorf("admission configuration %s: %w", path, err)
	}
	if c.Kind != "AdmissionConfiguration" || (c.APIVersion != "apiserver.config.k8s.io/v1" && c.APIVersion != "apiserver.k8s.io/v1alpha1") {
		return opts, fmt.Errorf("admission configuration %s: kind %q, apiVersion %q: want AdmissionConfiguration, apiserver.config.k8s.io/v1", path, c.Kind, c.APIVersion)
	}
	for i, p := range c.Plugins {
		if !slices.Contains(Names(), p.Name) {
			return opts, fmt.Errorf("admission configuration %s: plugins[%d].name: Unsupported value: %q", path, i, p.Name)
		}
		if p.Name != "PodSecurity" {
			continue
		}
		raw, where := []byte(nil), fmt.Sprintf("%s: plugins[%d].configuration", path, i)
		switch {
		case p.Path != "":
			file := p.Path
			if !filepath.IsAbs(file) {
				file = filepath.Join(filepath.Dir(path), file)
			}
			if raw, err = os.ReadFile(file); err != nil {
				return opts, fmt.Errorf("admission configuration %s: plugins[%d].path: %w", path, i, err)
			}
			where = file
		default:
			raw, _ = yaml.Marshal(p.Configuration)
		}
		var ps podSecurityConfiguration
		if err := yaml.UnmarshalStrict(raw, &ps); err != nil {
			return opts, fmt.Errorf("%s: %w", where, err)
		}
		if ps.Kind != "PodSecurityConfiguration" || ps.APIVersion != "pod-security.admission.config.k8s.io/v1" {
			return opts, fmt.Errorf("%s: kind %q, apiVersion %q: want PodSecurityConfiguration, pod-security.admission.config.k8s.io/v1", where, ps.Kind, ps.APIVersion)
		}
		d := ps.Defaults
		for field, v := range map[string]string{"enforce": d.Enforce, "audit": d.Audit, "warn": d.Warn} {
			if v != "" && !slices.Contains([]string{"privileged", "baseline", "restricted"}, v) {
				return opts, fmt.Errorf("%s: defaults.%s: Invalid value: %q: must be one of privileged, baseline, restricted", where, field, v)
			}
		}
		for field, v := range map[string]string{"enforce-version": d.EnforceVersion, "audit-version": d.AuditVersion, "warn-version": d.WarnVersion} {
			if v != "" && v != "latest" && !validVersion(v) {
				return opts, fmt.Errorf("%s: defaults.%s: Invalid value: %q: must be \"latest\" or of the form \"v1.x\"", where, field, v)
			}
		}
		opts.PodSecurity = ps.PodSecurityConfig
	}
	return opts, nil
}
