package registry

import (
	"fmt"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

func flowSchemaStrategy(r *Resource) {
	r.Status = true
	r.Default = asDefault(func(fs *flowcontrolv1.FlowSchema) {
		if fs.Spec.MatchingPrecedence == 0 {
			fs.Spec.MatchingPrecedence = 1000
		}
	})
	r.Validate = asValidate(validateFlowSchema)
	r.ValidateUpdate = asValidateUpdate(func(fs, _ *flowcontrolv1.FlowSchema) field.ErrorList { return validateFlowSchema(fs) })
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("PriorityLevel", "string", 0, ""), col("MatchingPrecedence", "string", 0, ""),
		col("DistinguisherMethod", "string", 0, ""), ageCol, col("MissingPL", "string", 0, "")}
	r.Row = asRow(func(fs *flowcontrolv1.FlowSchema, _ bool) []any {
		method := "<none>"
		if fs.Spec.DistinguisherMethod != nil {
			method = string(fs.Spec.DistinguisherMethod.Type)
		}
		missing := "?"
		for _, c := range fs.Status.Conditions {
			if c.Type == flowcontrolv1.FlowSchemaConditionDangling {
				missing = string(c.Status)
			}
		}
		return []any{fs.Name, fs.Spec.PriorityLevelConfiguration.Name, fmt.Sprint(fs.Spec.MatchingPrecedence), method, age(fs.CreationTimestamp), missing}
	})
}

// validateFlowSchema checks what classification needs: a priority level,
// a precedence in range, and rules that name subjects.
func validateFlowSchema(fs *flowcontrolv1.FlowSchema) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if fs.Spec.PriorityLevelConfiguration.Name == "" {
		errs = append(errs, field.Required(spec.Child("priorityLevelConfiguration", "name"), "must reference a priority level"))
	}
	if p := fs.Spec.MatchingPrecedence; p <= 0 || p > 10000 {
		errs = append(errs, field.Invalid(spec.Child("matchingPrecedence"), p, "must be between 1 and 10000"))
	}
	if d := fs.Spec.DistinguisherMethod; d != nil && d.Type != flowcontrolv1.FlowDistinguisherMethodByUserType && d.Type != flowcontrolv1.FlowDistinguisherMethodByNamespaceType {
		errs = append(errs, field.NotSupported(spec.Child("distinguisherMethod", "type"), d.Type, []string{string(flowcontrolv1.FlowDistinguisherMethodByUserType), string(flowcontrolv1.FlowDistinguisherMethodByNamespaceType)}))
	}
	for i, rule := range fs.Spec.Rules {
		p := spec.Child("rules").Index(i)
		if len(rule.Subjects) == 0 {
			errs = append(errs, field.Required(p.Child("subjects"), "at least one subject is required"))
		}
		if len(rule.ResourceRules) == 0 && len(rule.NonResourceRules) == 0 {
			errs = append(errs, field.Required(p, "at least one of resourceRules and nonResourceRules has to be non-empty"))
		}
	}
	return errs
}

func priorityLevelStrategy(r *Resource) {
	r.Status = true
	r.Default = asDefault(func(pl *flowcontrolv1.PriorityLevelConfiguration) {
		l := pl.Spec.Limited
		if pl.Spec.Type != flowcontrolv1.PriorityLevelEnablementLimited || l == nil {
			if e := pl.Spec.Exempt; pl.Spec.Type == flowcontrolv1.PriorityLevelEnablementExempt && e != nil {
				if e.NominalConcurrencyShares == nil {
					e.NominalConcurrencyShares = ptr.To[int32](0)
				}
				if e.LendablePercent == nil {
					e.LendablePercent = ptr.To[int32](0)
				}
			}
			return
		}
		if l.NominalConcurrencyShares == nil {
			l.NominalConcurrencyShares = ptr.To[int32](30)
		}
		if l.LendablePercent == nil {
			l.LendablePercent = ptr.To[int32](0)
		}
		if l.LimitResponse.Type == flowcontrolv1.LimitResponseTypeQueue {
			if l.LimitResponse.Queuing == nil {
				l.LimitResponse.Queuing = &flowcontrolv1.QueuingConfiguration{}
			}
			q := l.LimitResponse.Queuing
			if q.Queues == 0 {
				q.Queues = 64
			}
			if q.HandSize == 0 {
				q.HandSize = 8
			}
			if q.QueueLengthLimit == 0 {
				q.QueueLengthLimit = 50
			}
		}
	})
	r.Validate = asValidate(validatePriorityLevel)
	r.ValidateUpdate = asValidateUpdate(func(pl, _ *flowcontrolv1.PriorityLevelConfiguration) field.ErrorList {
		return validatePriorityLevel(pl)
	})
	r.Columns = []metav1.TableColumnDefinition{nameCol, col("Type", "string", 0, ""), col("NominalConcurrencyShares", "string", 0, ""),
		col("Queues", "string", 0, ""), col("HandSize", "string", 0, ""), col("QueueLengthLimit", "string", 0, ""), ageCol}
	r.Row = asRow(func(pl *flowcontrolv1.PriorityLevelConfiguration, _ bool) []any {
		ncs, queues, hand, qlen := "<none>", "<none>", "<none>", "<none>"
		if l := pl.Spec.Limited; l != nil {
			ncs = fmt.Sprint(ptr.Deref(l.NominalConcurrencyShares, 0))
			if q := l.LimitResponse.Queuing; q != nil {
				queues, hand, qlen = fmt.Sprint(q.Queues), fmt.Sprint(q.HandSize), fmt.Sprint(q.QueueLengthLimit)
			}
		}
		return []any{pl.Name, string(pl.Spec.Type), ncs, queues, hand, qlen, age(pl.CreationTimestamp)}
	})
}

func validatePriorityLevel(pl *flowcontrolv1.PriorityLevelConfiguration) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	switch pl.Spec.Type {
	case flowcontrolv1.PriorityLevelEnablementExempt:
		if pl.Spec.Limited != nil {
			errs = append(errs, field.Forbidden(spec.Child("limited"), "must be nil if the type is not Limited"))
		}
	case flowcontrolv1.PriorityLevelEnablementLimited:
		l := pl.Spec.Limited
		if l == nil {
			return append(errs, field.Required(spec.Child("limited"), "must not be empty when type is Limited"))
		}
		lp := spec.Child("limited")
		if n := ptr.Deref(l.NominalConcurrencyShares, 0); n < 0 {
			errs = append(errs, field.Invalid(lp.Child("nominalConcurrencyShares"), n, "must be a non-negative integer"))
		}
		if n := ptr.Deref(l.LendablePercent, 0); n < 0 || n > 100 {
			errs = append(errs, field.Invalid(lp.Child("lendablePercent"), n, "must be between 0 and 100, inclusive"))
		}
		switch l.LimitResponse.Type {
		case flowcontrolv1.LimitResponseTypeReject:
			if l.LimitResponse.Queuing != nil {
				errs = append(errs, field.Forbidden(lp.Child("limitResponse", "queuing"), "must be nil if limited.limitResponse.type is not Limited"))
			}
		case flowcontrolv1.LimitResponseTypeQueue:
			q := l.LimitResponse.Queuing
			qp := lp.Child("limitResponse", "queuing")
			if q.Queues <= 0 {
				errs = append(errs, field.Invalid(qp.Child("queues"), q.Queues, "must be positive"))
			}
			if q.HandSize <= 0 || q.HandSize > q.Queues {
				errs = append(errs, field.Invalid(qp.Child("handSize"), q.HandSize, fmt.Sprintf("should not be greater than queues (%d)", q.Queues)))
			}
			if q.QueueLengthLimit <= 0 {
				errs = append(errs, field.Invalid(qp.Child("queueLengthLimit"), q.QueueLengthLimit, "must be positive"))
			}
		default:
			errs = append(errs, field.NotSupported(lp.Child("limitResponse", "type"), l.LimitResponse.Type, []string{string(flowcontrolv1.LimitResponseTypeQueue), string(flowcontrolv1.LimitResponseTypeReject)}))
		}
	default:
		errs = append(errs, field.NotSupported(spec.Child("type"), pl.Spec.Type, []string{string(flowcontrolv1.PriorityLevelEnablementExempt), string(flowcontrolv1.PriorityLevelEnablementLimited)}))
	}
	return errs
}
