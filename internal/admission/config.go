package admission

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"sigs.k8s.io/yaml"

	"github.com/skiff-sh/skiff/internal/configfile"
)

// admissionConfiguration is upstream's AdmissionConfiguration file.
type admissionConfiguration struct {
	Kind       string         `json:"kind"`
	APIVersion string         `json:"apiVersion"`
	Plugins    []pluginConfig `json:"plugins"`
}

// pluginConfig is one plugin's entry: its configuration inline, or the
// path of a file holding it.
type pluginConfig struct {
	Name          string         `json:"name"`
	Path          string         `json:"path,omitempty"`
	Configuration map[string]any `json:"configuration,omitempty"`
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
	b, err := os.ReadFile(path)
	if err != nil {
		return Options{}, fmt.Errorf("admission configuration: %w", err)
	}
	opts, err := parseConfig(path, b)
	if err != nil {
		return opts, fmt.Errorf("admission configuration %s", err)
	}
	return opts, nil
}

// parseConfig decodes the AdmissionConfiguration b read from path; an
// error begins with the file it is about (path, or a plugin's own file)
// and places its field at its line there.
func parseConfig(path string, b []byte) (Options, error) {
	var opts Options
	var c admissionConfiguration
	if err := configfile.Decode(b, &c); err != nil {
		return opts, fmt.Errorf("%s: %w", path, configfile.Locate(b, "", err))
	}
	if c.Kind != "AdmissionConfiguration" || (c.APIVersion != "apiserver.config.k8s.io/v1" && c.APIVersion != "apiserver.k8s.io/v1alpha1") {
		return opts, fmt.Errorf("%s: %w", path, configfile.Locate(b, "", configfile.Errorf("kind", "kind %q, apiVersion %q: want AdmissionConfiguration, apiserver.config.k8s.io/v1", c.Kind, c.APIVersion)))
	}
	for i, p := range c.Plugins {
		at := fmt.Sprintf("plugins[%d]", i)
		if !slices.Contains(Names(), p.Name) {
			return opts, fmt.Errorf("%s: %w", path, configfile.Locate(b, "", configfile.Errorf(at+".name", "Unsupported value: %q", p.Name)))
		}
		if p.Name != "PodSecurity" || p.Path == "" && p.Configuration == nil {
			continue
		}
		// An inline configuration's fields are placed in this file under
		// plugins[i].configuration; a plugin file's in that file.
		raw, file, prefix := b, path, at+".configuration"
		if p.Path != "" {
			file = p.Path
			if !filepath.IsAbs(file) {
				file = filepath.Join(filepath.Dir(path), file)
			}
			var err error
			if raw, err = os.ReadFile(file); err != nil {
				return opts, fmt.Errorf("%s: %w", path, configfile.Locate(b, "", configfile.Errorf(at+".path", "%v", err)))
			}
			prefix = ""
		}
		ps, err := podSecurityConfig(p, raw, prefix)
		if err != nil {
			return opts, fmt.Errorf("%s: %w", file, configfile.Locate(raw, prefix, err))
		}
		opts.PodSecurity = ps
	}
	return opts, nil
}

// podSecurityConfig decodes and checks a PodSecurityConfiguration: the
// plugin's inline configuration, or raw (its own file) when prefix is "".
func podSecurityConfig(p pluginConfig, raw []byte, prefix string) (PodSecurityConfig, error) {
	if prefix != "" {
		raw, _ = yaml.Marshal(p.Configuration)
	}
	var ps podSecurityConfiguration
	if err := configfile.Decode(raw, &ps); err != nil {
		return PodSecurityConfig{}, err
	}
	if ps.Kind != "PodSecurityConfiguration" || ps.APIVersion != "pod-security.admission.config.k8s.io/v1" {
		return PodSecurityConfig{}, configfile.Errorf("kind", "kind %q, apiVersion %q: want PodSecurityConfiguration, pod-security.admission.config.k8s.io/v1", ps.Kind, ps.APIVersion)
	}
	d := ps.Defaults
	for _, f := range []struct{ field, v string }{{"enforce", d.Enforce}, {"audit", d.Audit}, {"warn", d.Warn}} {
		if f.v != "" && !slices.Contains([]string{"privileged", "baseline", "restricted"}, f.v) {
			return PodSecurityConfig{}, configfile.Errorf("defaults."+f.field, "Invalid value: %q: must be one of privileged, baseline, restricted", f.v)
		}
	}
	for _, f := range []struct{ field, v string }{{"enforce-version", d.EnforceVersion}, {"audit-version", d.AuditVersion}, {"warn-version", d.WarnVersion}} {
		if f.v != "" && f.v != "latest" && !validVersion(f.v) {
			return PodSecurityConfig{}, configfile.Errorf("defaults."+f.field, "Invalid value: %q: must be \"latest\" or of the form \"v1.x\"", f.v)
		}
	}
	return ps.PodSecurityConfig, nil
}
