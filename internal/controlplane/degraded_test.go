package controlplane

import (
	"strings"
	"testing"
	"time"
)

// Answers warn that they may be stale only once the member has known no
// leader for longer than an election takes.
func TestStaleWarning(t *testing.T) {
	now := time.Date(2026, 12, 6, 7, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		hasLeader bool
		since     time.Duration // before now; 0: not yet noticed
		warns     bool
	}{
		"a leader":                     {true, 0, false},
		"a leader again after a while": {true, time.Minute, false},
		"no leader, not yet noticed":   {false, 0, false},
		"an election":                  {false, time.Second, false},
		"no leader for 3 s":            {false, leaderlessGrace, true},
		"no leader for a minute":       {false, time.Minute, true},
	} {
		var since int64
		if tc.since > 0 {
			since = now.Add(-tc.since).UnixNano()
		}
		got := staleWarning(tc.hasLeader, since, now)
		if warns := got != ""; warns != tc.warns || (warns && !strings.Contains(got, "--cluster-reset")) {
			t.Errorf("%s: %q", name, got)
		}
	}
}
