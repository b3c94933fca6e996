package controlplane

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// A rotation goes on only once every live server holds its step; servers
// that are not live (no master lease) catch up when they start.
func TestBehind(t *testing.T) {
	applied := map[string]ServerKeys{"10.0.0.1": {Generation: 3}, "10.0.0.2": {Generation: 2}, "10.0.0.9": {Generation: 1}}
	for name, tc := range map[string]struct {
		live []string
		gen  int64
		want []string
	}{
		"all hold it":              {[]string{"10.0.0.1"}, 3, nil},
		"one a step behind":        {[]string{"10.0.0.2", "10.0.0.1"}, 3, []string{"10.0.0.2"}},
		"one that never said":      {[]string{"10.0.0.1", "10.0.0.5"}, 2, []string{"10.0.0.5"}},
		"a stopped server ignored": {[]string{"10.0.0.1", "10.0.0.2"}, 2, nil},
		"sorted":                   {[]string{"10.0.0.5", "10.0.0.2", "10.0.0.1"}, 4, []string{"10.0.0.1", "10.0.0.2", "10.0.0.5"}},
	} {
		if got := behind(tc.live, applied, tc.gen); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}

func TestServerWait(t *testing.T) {
	for param, want := range map[string]time.Duration{"": encryptionApplyWait, "5s": 5 * time.Second, "10m": 10 * time.Minute} {
		if got, err := serverWait(param); err != nil || got != want {
			t.Errorf("%q: %s %v, want %s", param, got, err, want)
		}
	}
	for _, bad := range []string{"0s", "500ms", "11m", "-5s", "soon"} {
		if _, err := serverWait(bad); err == nil || !strings.Contains(err.Error(), "a duration from 1s to 10m0s") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
