package registry

import (
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func roleBindingTable() ([]metav1.TableColumnDefinition, func(runtime.Object, bool) []any) {
	return []metav1.TableColumnDefinition{nameCol, col("Role", "string", 0, ""), ageCol, col("Users", "string", 1, ""), col("Groups", "string", 1, ""), col("ServiceAccounts", "string", 1, "")}, func(o runtime.Object, _ bool) []any {
		var ref rbacv1.RoleRef
		var subjects []rbacv1.Subject
		switch b := o.(type) {
		case *rbacv1.RoleBinding:
			ref, subjects = b.RoleRef, b.Subjects
		case *rbacv1.ClusterRoleBinding:
			ref, subjects = b.RoleRef, b.Subjects
		}
		var users, groups, sas []string
		for _, s := range subjects {
			switch s.Kind {
			case rbacv1.UserKind:
				users = append(users, s.Name)
			case rbacv1.GroupKind:
				groups = append(groups, s.Name)
			case rbacv1.ServiceAccountKind:
				sas = append(sas, s.Namespace+"/"+s.Name)
			}
		}
		return []any{nameOf(o), ref.Kind + "/" + ref.Name, ageOf(o), strings.Join(users, ", "), strings.Join(groups, ", "), strings.Join(sas, ", ")}
	}
}
