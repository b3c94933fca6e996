package apiserver

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/registry"
)

// tableFor renders objects as a Table with the resource's columns; every
// column is sent and kubectl hides priority>0 ones unless -o wide. Each row
// carries the object as includeObject asks (default: its metadata).
func (s *Server) tableFor(res *registry.Resource, objs []runtime.Object, _ string, includeObject string, noHeaders bool) (*metav1.Table, error) {
	cols, row := res.Columns, res.Row
	if cols == nil || row == nil {
		cols, row = registry.DefaultColumns, func(o runtime.Object, _ bool) []any { return registry.DefaultRow(o) }
	}
	tbl := &metav1.Table{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "Table"}}
	if !noHeaders {
		tbl.ColumnDefinitions = cols
	}
	tbl.Rows = make([]metav1.TableRow, 0, len(objs))
	for _, obj := range objs {
		tr := metav1.TableRow{Cells: row(obj, true)}
		switch includeObject {
		case "None":
		case "Object":
			cp := withKind(res, obj.DeepCopyObject())
			b, err := s.codecs.EncodeJSON(cp)
			if err != nil {
				return nil, err
			}
			tr.Object = runtime.RawExtension{Raw: b}
		default:
			acc, err := meta.Accessor(obj)
			if err != nil {
				return nil, err
			}
			b, err := s.codecs.EncodeJSON(partial(acc))
			if err != nil {
				return nil, err
			}
			tr.Object = runtime.RawExtension{Raw: b}
		}
		tbl.Rows = append(tbl.Rows, tr)
	}
	return tbl, nil
}
