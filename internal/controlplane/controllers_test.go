package controlplane

import (
	"slices"
	"testing"

	"github.com/skiff-sh/skiff/internal/authz"
	"github.com/skiff-sh/skiff/internal/ingress"
)

// Every controller but the token controller writes as its own
// ServiceAccount, each account has its role in the bootstrap policy, and
// the policy grants no account that no controller uses.
func TestControllersHaveAccountsWithRoles(t *testing.T) {
	accounts := authz.ControllerAccounts()
	used := map[string]bool{}
	regs := append(Controllers(), ingressRegistration(ingress.Settings{}))
	for _, r := range regs {
		if r.ServiceAccount == "" {
			if r.Name != "serviceaccount-token" {
				t.Errorf("controller %s has no ServiceAccount: it would write as the controller manager", r.Name)
			}
			continue
		}
		if !slices.Contains(accounts, r.ServiceAccount) {
			t.Errorf("controller %s: account %s has no system:controller role", r.Name, r.ServiceAccount)
		}
		used[r.ServiceAccount] = true
	}
	for _, a := range accounts {
		if !used[a] {
			t.Errorf("role %s%s is granted to an account no controller uses", authz.ControllerRolePrefix, a)
		}
	}
}
