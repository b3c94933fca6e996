package config

import (
	"strings"
	"testing"
)

func TestParseErrorsNameTheField(t *testing.T) {
	head := "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown top-level field", head + "percentageOfNodesToScor: 5\n", `unknown field "percentageOfNodesToScor"`},
		{"wrong version", "apiVersion: kubescheduler.config.k8s.io/v1beta3\nkind: KubeSchedulerConfiguration\n", "apiVersion: Unsupported value"},
		{"percentage out of range", head + "percentageOfNodesToScore: 120\n", "percentageOfNodesToScore: Invalid value: 120"},
		{"unknown plugin", head + "profiles:\n- plugins:\n    filter:\n      enabled: [{name: Nope}]\n", `profiles[0].plugins.filter.enabled[0].name: Invalid value: "Nope": unknown plugin`},
		{"duplicate scheduler name", head + "profiles:\n- schedulerName: a\n- schedulerName: a\n", `profiles[1].schedulerName: Duplicate value: "a"`},
		{"bad plugin args", head + "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args: {scoringStrategy: {type: Cheapest}}\n", `profiles[0].pluginConfig[0].args: scoringStrategy.type: Unsupported value: "Cheapest"`},
		{"unknown arg field", head + "profiles:\n- pluginConfig:\n  - name: InterPodAffinity\n    args: {hardPodAffinityWieght: 3}\n", `profiles[0].pluginConfig[0].args: error unmarshaling JSON: while decoding JSON: json: unknown field "hardPodAffinityWieght"`},
		{"negative weight", head + "profiles:\n- plugins:\n    score:\n      enabled: [{name: ImageLocality, weight: -1}]\n", "profiles[0].plugins.score.enabled[0].weight: Invalid value: -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseProfilesAndArgs(t *testing.T) {
	doc := `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 30
profiles:
- schedulerName: default-scheduler
- schedulerName: packer
  plugins:
    score:
      disabled: [{name: NodeResourcesBalancedAllocation}]
      enabled: [{name: NodeResourcesFit, weight: 5}]
  pluginConfig:
  - name: NodeResourcesFit
    args:
      apiVersion: kubescheduler.config.k8s.io/v1
      kind: NodeResourcesFitArgs
      scoringStrategy: {type: MostAllocated}
`
	c, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if c.Percentage != 30 || len(c.Profiles) != 2 || *c.Profiles[1].SchedulerName != "packer" {
		t.Fatalf("parsed %+v", c)
	}
	f, err := Build(&c.Profiles[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	weights := map[string]int64{}
	for _, s := range f.Score {
		weights[s.Name()] = s.Weight
	}
	if weights["NodeResourcesFit"] != 5 || weights["TaintToleration"] != 3 || weights["InterPodAffinity"] != 2 {
		t.Errorf("weights %v", weights)
	}
	if _, ok := weights["NodeResourcesBalancedAllocation"]; ok {
		t.Errorf("disabled plugin still scores: %v", weights)
	}
	if len(f.Filter) != 10 || f.QueueSort.Name() != "PrioritySort" || len(f.PostFilter) != 1 || f.Bind[0].Name() != "DefaultBinder" {
		t.Errorf("filters %d, sort %s, postFilter %d", len(f.Filter), f.QueueSort.Name(), len(f.PostFilter))
	}
}
