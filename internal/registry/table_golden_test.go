package registry

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/skiff-sh/skiff/internal/golden"

	"k8s.io/apimachinery/pkg/api/meta"
)

// TestTablesGolden renders the table columns of every resource, and the
// row of an empty object of each kind, the way `kubectl get` shows them
// (-o wide columns marked). A change to any kind's columns or rows shows as
// a diff of testdata/tables.golden (go test ./internal/registry -run
// TablesGolden -update rewrites it).
func TestTablesGolden(t *testing.T) {
	var b strings.Builder
	resources := Catalog()
	sort.Slice(resources, func(i, j int) bool { return resources[i].GVR.String() < resources[j].GVR.String() })
	for _, r := range resources {
		fmt.Fprintf(&b, "%s\n", r.GVR)
		if r.Row == nil {
			b.WriteString("  (default columns: Name, Created At)\n")
			continue
		}
		var cols []string
		for _, c := range r.Columns {
			name := c.Name
			if c.Priority > 0 {
				name += " (wide)"
			}
			cols = append(cols, name+":"+c.Type)
		}
		fmt.Fprintf(&b, "  columns: %s\n", strings.Join(cols, " | "))
		obj := r.New()
		acc, _ := meta.Accessor(obj)
		acc.SetName("example")
		if r.Namespaced {
			acc.SetNamespace("ns")
		}
		var cells []string
		for _, c := range r.Row(obj, true) {
			cells = append(cells, fmt.Sprintf("%v", c))
		}
		fmt.Fprintf(&b, "  empty:   %s\n", strings.Join(cells, " | "))
	}
	golden.Check(t, filepath.Join("testdata", "tables.golden"), b.String())
}
