// Package serverlog reads what the test suites check in a skiff server's
// log.
package serverlog

import (
	"strings"

	"github.com/skiff-sh/skiff/internal/authz"
)

// Refusals returns the log lines where the server refused one of its own
// components: every test run checks that the default policy lets them do
// their work.
func Refusals(logs string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, authz.ComponentRefused) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
