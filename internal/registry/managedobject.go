package registry

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/typed"

	"github.com/skiff-sh/skiff/internal/objectjson"
)

// managedObject is an unstructured object as the field manager sees it:
// its managedFields are read and written in their map form directly.
// Unstructured's own accessors convert each entry by reflection and a
// JSON round trip of its field set (and copy the list once more), which
// was a third of the field manager's work on a custom object's create.
// Entries of an unusual shape take Unstructured's way, so the result is
// always what it would give (TestManagedObjectMatchesUnstructured).
type managedObject struct{ *unstructured.Unstructured }

// asManaged wraps an unstructured object for the field manager; other
// objects are returned as they are.
func asManaged(obj runtime.Object) runtime.Object {
	if u, ok := obj.(*unstructured.Unstructured); ok && u != nil {
		return &managedObject{u}
	}
	return obj
}

// plainObject undoes asManaged.
func plainObject(obj runtime.Object) runtime.Object {
	if m, ok := obj.(*managedObject); ok {
		return m.Unstructured
	}
	return obj
}

func (m *managedObject) GetManagedFields() []metav1.ManagedFieldsEntry {
	meta, ok := m.Object["metadata"].(map[string]any)
	if !ok {
		return m.Unstructured.GetManagedFields()
	}
	items, ok := meta["managedFields"].([]any)
	if !ok {
		return m.Unstructured.GetManagedFields()
	}
	out := make([]metav1.ManagedFieldsEntry, len(items))
	for i, item := range items {
		if !readEntry(item, &out[i]) {
			return m.Unstructured.GetManagedFields()
		}
	}
	return out
}

func (m *managedObject) SetManagedFields(entries []metav1.ManagedFieldsEntry) {
	if entries == nil {
		m.Unstructured.SetManagedFields(nil)
		return
	}
	if m.Object == nil {
		m.Object = map[string]any{}
	}
	v, present := m.Object["metadata"]
	meta, ok := v.(map[string]any)
	if present && !ok {
		m.Unstructured.SetManagedFields(entries)
		return
	}
	items := make([]any, len(entries))
	for i := range entries {
		if items[i], ok = entryMap(&entries[i]); !ok {
			m.Unstructured.SetManagedFields(entries)
			return
		}
	}
	if meta == nil {
		meta = map[string]any{}
		m.Object["metadata"] = meta
	}
	meta["managedFields"] = items
}

// entryMap is e in the form runtime.DefaultUnstructuredConverter gives it;
// false for what only it should convert.
func entryMap(e *metav1.ManagedFieldsEntry) (map[string]any, bool) {
	out := make(map[string]any, 7)
	setString(out, "manager", e.Manager)
	setString(out, "operation", string(e.Operation))
	setString(out, "apiVersion", e.APIVersion)
	setString(out, "fieldsType", e.FieldsType)
	setString(out, "subresource", e.Subresource)
	if e.Time != nil {
		if e.Time.IsZero() {
			return nil, false
		}
		out["time"] = e.Time.UTC().Format(time.RFC3339)
	}
	if e.FieldsV1 != nil {
		raw := e.FieldsV1.Raw
		if len(raw) == 0 || raw[0] != '{' {
			return nil, false
		}
		set, ok := objectjson.Decode(raw)
		if !ok {
			return nil, false
		}
		out["fieldsV1"] = set
	}
	return out, true
}

// setString sets m[k] to a non-empty v (the fields are omitempty).
func setString(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

// readEntry fills e from item as runtime.DefaultUnstructuredConverter
// would; false for anything it should read itself (unknown keys, other
// types, a time that does not parse).
func readEntry(item any, e *metav1.ManagedFieldsEntry) bool {
	m, ok := item.(map[string]any)
	if !ok {
		return false
	}
	for k, v := range m {
		if k == "fieldsV1" {
			set, ok := v.(map[string]any)
			if !ok {
				return false
			}
			raw, err := objectjson.Marshal(set)
			if err != nil {
				return false
			}
			e.FieldsV1 = &metav1.FieldsV1{Raw: raw}
			continue
		}
		s, ok := v.(string)
		if !ok {
			return false
		}
		switch k {
		case "manager":
			e.Manager = s
		case "operation":
			e.Operation = metav1.ManagedFieldsOperationType(s)
		case "apiVersion":
			e.APIVersion = s
		case "fieldsType":
			e.FieldsType = s
		case "subresource":
			e.Subresource = s
		case "time":
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return false
			}
			e.Time = &metav1.Time{Time: t.Local()}
		default:
			return false
		}
	}
	return true
}

// plainTypes and plainConverter hand the field manager's converters the
// unstructured object inside a managedObject.
type plainTypes struct{ managedfields.TypeConverter }

func (p plainTypes) ObjectToTyped(obj runtime.Object, opts ...typed.ValidationOptions) (*typed.TypedValue, error) {
	return p.TypeConverter.ObjectToTyped(plainObject(obj), opts...)
}

type plainConverter struct{ runtime.ObjectConvertor }

func (p plainConverter) Convert(in, out, context any) error {
	if o, ok := in.(runtime.Object); ok {
		in = plainObject(o)
	}
	return p.ObjectConvertor.Convert(in, out, context)
}

func (p plainConverter) ConvertToVersion(in runtime.Object, gv runtime.GroupVersioner) (runtime.Object, error) {
	return p.ObjectConvertor.ConvertToVersion(plainObject(in), gv)
}
