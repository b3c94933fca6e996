package plan

import (
	"slices"
	"testing"
)

// TestPod reads as the rules of a pod sync's first decision.
func TestPod(t *testing.T) {
	cases := []struct {
		name  string
		facts PodFacts
		want  []Step
	}{
		{"unknown before the first list: wait", PodFacts{}, []Step{StepWait}},
		{"unknown after the list: gone from the API, remove", PodFacts{Listed: true}, []Step{StepRemove}},
		{"new pod: admit, then run", PodFacts{Known: true, Listed: true, New: true}, []Step{StepAdmit, StepRun}},
		{"running pod: admitted, run", PodFacts{Known: true, Listed: true}, []Step{StepAdmitted, StepRun}},
		{"deleted: terminate only", PodFacts{Known: true, Listed: true, Deleting: true, Evicted: true}, []Step{StepTerminate}},
		{"finished: stop what is left", PodFacts{Known: true, Listed: true, Finished: true, Evicted: true, DeadlinePassed: true}, []Step{StepStop}},
		{"evicted before its deadline", PodFacts{Known: true, Listed: true, Evicted: true, DeadlinePassed: true, New: true}, []Step{StepEvict}},
		{"past its deadline", PodFacts{Known: true, Listed: true, DeadlinePassed: true}, []Step{StepDeadline}},
		{"static pod: mirror, always admitted, run", PodFacts{Known: true, Static: true, New: true, Evicted: true}, []Step{StepMirror, StepAdmitted, StepRun}},
		{"finished static pod: mirror, stop", PodFacts{Known: true, Static: true, Finished: true}, []Step{StepMirror, StepAdmitted, StepStop}},
		{"static pod with a deletion mark: still the node's own", PodFacts{Known: true, Static: true, Deleting: true}, []Step{StepMirror, StepAdmitted, StepRun}},
	}
	for _, c := range cases {
		if got := Pod(c.facts); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
