package registry

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// col defines a table column; priority 1 columns show only with -o wide.
func col(name, typ string, priority int32, desc string) metav1.TableColumnDefinition {
	format := ""
	if name == "Name" {
		format = "name"
	}
	return metav1.TableColumnDefinition{Name: name, Type: typ, Format: format, Priority: priority, Description: desc}
}

var (
	nameCol = col("Name", "string", 0, "Name must be unique within a namespace. It is required when creating resources.")
	ageCol  = col("Age", "string", 0, "CreationTimestamp is a timestamp representing the server time when this object was created.")
)

// DefaultColumns are used for resources that define no columns of their
// own, as upstream's default table convertor does.
var DefaultColumns = []metav1.TableColumnDefinition{
	nameCol,
	{Name: "Created At", Type: "date", Description: "CreationTimestamp is a timestamp representing the server time when this object was created."},
}

// DefaultRow is the row for DefaultColumns.
func DefaultRow(obj runtime.Object) []any {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return []any{"", ""}
	}
	return []any{acc.GetName(), acc.GetCreationTimestamp().UTC().Format(time.RFC3339)}
}

// age renders a timestamp the way kubectl shows ages ("5m", "3d2h").
func age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t.Time))
}

func ageOf(obj runtime.Object) string {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return "<unknown>"
	}
	return age(acc.GetCreationTimestamp())
}

func nameOf(obj runtime.Object) string {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return ""
	}
	return acc.GetName()
}

func createdAtTable() ([]metav1.TableColumnDefinition, func(runtime.Object, bool) []any) {
	return []metav1.TableColumnDefinition{nameCol, {Name: "Created At", Type: "date"}}, func(o runtime.Object, _ bool) []any { return DefaultRow(o) }
}

func labelsString(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

func selectorString(s *metav1.LabelSelector) string {
	if s == nil {
		return "<none>"
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return "<error>"
	}
	if sel.Empty() {
		return "<none>"
	}
	return sel.String()
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func joinLimited(items []string, limit int) string {
	if len(items) == 0 {
		return "<none>"
	}
	if len(items) > limit {
		return strings.Join(items[:limit], ",") + fmt.Sprintf(" + %d more...", len(items)-limit)
	}
	return strings.Join(items, ",")
}
