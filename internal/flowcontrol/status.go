package flowcontrol

import (
	"fmt"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Dangling is the Dangling condition upstream's configuration controller
// keeps on a FlowSchema: whether the priority level it names exists
// (which kubectl shows as MISSINGPL).
func Dangling(fs *flowcontrolv1.FlowSchema, levelExists bool, now metav1.Time) flowcontrolv1.FlowSchemaCondition {
	name := fs.Spec.PriorityLevelConfiguration.Name
	c := flowcontrolv1.FlowSchemaCondition{Type: flowcontrolv1.FlowSchemaConditionDangling, LastTransitionTime: now}
	if levelExists {
		c.Status, c.Reason = flowcontrolv1.ConditionFalse, "Found"
		c.Message = fmt.Sprintf("This FlowSchema references the PriorityLevelConfiguration object named %q and it exists", name)
	} else {
		c.Status, c.Reason = flowcontrolv1.ConditionTrue, "NotFound"
		c.Message = fmt.Sprintf("This FlowSchema references the PriorityLevelConfiguration object named %q but there is no such object", name)
	}
	return c
}

// WithCondition is fs's status with c in place of its condition of the
// same type, and whether that changed anything but the transition time
// (an unchanged condition keeps its old time).
func WithCondition(st flowcontrolv1.FlowSchemaStatus, c flowcontrolv1.FlowSchemaCondition) (flowcontrolv1.FlowSchemaStatus, bool) {
	out := flowcontrolv1.FlowSchemaStatus{}
	found := false
	for _, old := range st.Conditions {
		if old.Type != c.Type {
			out.Conditions = append(out.Conditions, old)
			continue
		}
		found = true
		if old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message {
			return st, false
		}
		if old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		}
		out.Conditions = append(out.Conditions, c)
	}
	if !found {
		out.Conditions = append(out.Conditions, c)
	}
	return out, true
}
