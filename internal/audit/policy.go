// Package audit records who did what to the API: upstream's audit policy
// (audit.k8s.io/v1 Policy: levels None, Metadata, Request,
// RequestResponse, rules by user, group, verb, resource, namespace and
// non-resource URL, omitStages) and its events, one JSON object per line
// per stage, as upstream's log backend writes them.
package audit

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/skiff-sh/skiff/internal/configfile"
)

// Level is how much of a request is recorded.
type Level string

// Levels, least first.
const (
	LevelNone            Level = "None"
	LevelMetadata        Level = "Metadata"
	LevelRequest         Level = "Request"
	LevelRequestResponse Level = "RequestResponse"
)

var levels = []Level{LevelNone, LevelMetadata, LevelRequest, LevelRequestResponse}

// Less says whether l records less than o.
func (l Level) Less(o Level) bool { return slices.Index(levels, l) < slices.Index(levels, o) }

// Stage is when in a request an event is recorded.
type Stage string

// Stages, as upstream names them.
const (
	StageRequestReceived  Stage = "RequestReceived"
	StageResponseStarted  Stage = "ResponseStarted"
	StageResponseComplete Stage = "ResponseComplete"
	StagePanic            Stage = "Panic"
)

var stages = []Stage{StageRequestReceived, StageResponseStarted, StageResponseComplete, StagePanic}

// Policy is an audit policy file.
type Policy struct {
	Kind       string  `json:"kind"`
	APIVersion string  `json:"apiVersion"`
	Metadata   any     `json:"metadata,omitempty"`
	Rules      []Rule  `json:"rules"`
	OmitStages []Stage `json:"omitStages,omitempty"`
	// OmitManagedFields drops managedFields from recorded objects.
	OmitManagedFields bool `json:"omitManagedFields,omitempty"`
}

// Rule matches requests to a level; the first matching rule decides.
type Rule struct {
	Level           Level           `json:"level"`
	Users           []string        `json:"users,omitempty"`
	UserGroups      []string        `json:"userGroups,omitempty"`
	Verbs           []string        `json:"verbs,omitempty"`
	Resources       []GroupResource `json:"resources,omitempty"`
	Namespaces      []string        `json:"namespaces,omitempty"`
	NonResourceURLs []string        `json:"nonResourceURLs,omitempty"`
	OmitStages      []Stage         `json:"omitStages,omitempty"`
	// OmitManagedFields overrides the policy's when set.
	OmitManagedFields *bool `json:"omitManagedFields,omitempty"`
}

// GroupResource names resources of one API group ("" is core): all of
// them when Resources is empty; "pods/log" names a subresource, "*/scale"
// a subresource of any, "pods/*" every subresource of pods.
type GroupResource struct {
	Group         string   `json:"group"`
	Resources     []string `json:"resources,omitempty"`
	ResourceNames []string `json:"resourceNames,omitempty"`
}

// LoadPolicy reads and checks a policy file; errors name the file and field.
func LoadPolicy(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit policy: %w", err)
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("audit policy %s: %w", path, err)
	}
	return p, nil
}

// ParsePolicy decodes and checks a policy (unknown fields are errors).
func ParsePolicy(b []byte) (*Policy, error) {
	v, err := parsePolicy(b)
	if err != nil {
		return nil, configfile.Locate(b, "", err)
	}
	return v, nil
}

func parsePolicy(b []byte) (*Policy, error) {
	var p Policy
	if err := configfile.Decode(b, &p); err != nil {
		return nil, err
	}
	if p.Kind != "Policy" || (p.APIVersion != "audit.k8s.io/v1") {
		return nil, configfile.Errorf("kind", "kind %q, apiVersion %q: want Policy, audit.k8s.io/v1", p.Kind, p.APIVersion)
	}
	if err := checkStages("omitStages", p.OmitStages); err != nil {
		return nil, err
	}
	for i, r := range p.Rules {
		at := fmt.Sprintf("rules[%d]", i)
		if !slices.Contains(levels, r.Level) {
			return nil, configfile.Errorf(at+".level", "Unsupported value: %q: supported values: \"None\", \"Metadata\", \"Request\", \"RequestResponse\"", r.Level)
		}
		if len(r.NonResourceURLs) > 0 && (len(r.Resources) > 0 || len(r.Namespaces) > 0) {
			return nil, configfile.Errorf(at+".nonResourceURLs", "Invalid value: rules cannot apply to both regular resources and non-resource URLs")
		}
		for j, u := range r.NonResourceURLs {
			if !strings.HasPrefix(u, "/") && u != "*" || strings.Contains(strings.TrimSuffix(u, "*"), "*") {
				return nil, configfile.Errorf(fmt.Sprintf("%s.nonResourceURLs[%d]", at, j), "Invalid value: %q: a path starting with /, with * only at its end", u)
			}
		}
		if err := checkStages(at+".omitStages", r.OmitStages); err != nil {
			return nil, err
		}
	}
	return &p, nil
}

func checkStages(at string, s []Stage) error {
	for i, st := range s {
		if !slices.Contains(stages, st) {
			return configfile.Errorf(fmt.Sprintf("%s[%d]", at, i), "Unsupported value: %q", st)
		}
	}
	return nil
}

// Attributes are what a rule matches on.
type Attributes struct {
	User        string
	Groups      []string
	Verb        string
	IsResource  bool
	Group       string
	Resource    string
	Subresource string
	Namespace   string
	Name        string
	Path        string
}

// Decision is what the policy says about one request.
type Decision struct {
	Level             Level
	OmitStages        []Stage
	OmitManagedFields bool
}

// sensitive are resources whose data is recorded only at a
// RequestResponse rule that names them (a catch-all Request or
// RequestResponse rule records their metadata only).
var sensitive = map[string]bool{"secrets": true}

// Decide is the first matching rule's level (None when none matches), with
// the stages to omit.
func (p *Policy) Decide(a Attributes) Decision {
	if p == nil {
		return Decision{Level: LevelNone}
	}
	for _, r := range p.Rules {
		if !r.matches(a) {
			continue
		}
		d := Decision{Level: r.Level, OmitStages: slices.Concat(p.OmitStages, r.OmitStages), OmitManagedFields: p.OmitManagedFields}
		if r.OmitManagedFields != nil {
			d.OmitManagedFields = *r.OmitManagedFields
		}
		if a.IsResource && a.Group == "" && sensitive[a.Resource] && LevelMetadata.Less(d.Level) && !r.names(a.Resource) {
			d.Level = LevelMetadata
		}
		return d
	}
	return Decision{Level: LevelNone}
}

// names says whether the rule names core resource res explicitly.
func (r Rule) names(res string) bool {
	for _, gr := range r.Resources {
		if gr.Group == "" && slices.Contains(gr.Resources, res) {
			return true
		}
	}
	return false
}

func (r Rule) matches(a Attributes) bool {
	if len(r.Users) > 0 && !slices.Contains(r.Users, a.User) {
		return false
	}
	if len(r.UserGroups) > 0 && !slices.ContainsFunc(a.Groups, func(g string) bool { return slices.Contains(r.UserGroups, g) }) {
		return false
	}
	if len(r.Verbs) > 0 && !slices.Contains(r.Verbs, a.Verb) {
		return false
	}
	if len(r.NonResourceURLs) > 0 {
		if a.IsResource {
			return false
		}
		return slices.ContainsFunc(r.NonResourceURLs, func(u string) bool {
			return u == "*" || u == a.Path || strings.HasSuffix(u, "*") && strings.HasPrefix(a.Path, strings.TrimSuffix(u, "*"))
		})
	}
	if len(r.Resources) == 0 && len(r.Namespaces) == 0 {
		return true
	}
	if !a.IsResource {
		return false
	}
	if len(r.Namespaces) > 0 && !slices.Contains(r.Namespaces, a.Namespace) {
		return false
	}
	if len(r.Resources) == 0 {
		return true
	}
	return slices.ContainsFunc(r.Resources, func(gr GroupResource) bool { return gr.matches(a) })
}

func (gr GroupResource) matches(a Attributes) bool {
	if gr.Group != "*" && gr.Group != a.Group {
		return false
	}
	if len(gr.ResourceNames) > 0 && !slices.Contains(gr.ResourceNames, a.Name) {
		return false
	}
	if len(gr.Resources) == 0 {
		return true
	}
	full := a.Resource
	if a.Subresource != "" {
		full += "/" + a.Subresource
	}
	for _, res := range gr.Resources {
		switch {
		case res == "*", res == full:
			return true
		case res == "*/"+a.Subresource && a.Subresource != "":
			return true
		case res == a.Resource+"/*" && a.Subresource != "":
			return true
		}
	}
	return false
}
