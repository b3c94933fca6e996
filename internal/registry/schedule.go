package registry

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// cronFields are the allowed ranges of the five standard cron fields.
var cronFields = []struct {
	name   string
	lo, hi int
	names  []string
}{
	{"minute", 0, 59, nil},
	{"hour", 0, 23, nil},
	{"day of month", 1, 31, nil},
	{"month", 1, 12, []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{"day of week", 0, 7, []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

var cronMacros = map[string]bool{"@yearly": true, "@annually": true, "@monthly": true, "@weekly": true, "@daily": true, "@midnight": true, "@hourly": true}

// validateSchedule checks a standard five-field cron expression or macro.
func validateSchedule(s string) error {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return fmt.Errorf("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
	}
	if cronMacros[s] {
		return nil
	}
	if strings.HasPrefix(s, "@every ") {
		_, err := time.ParseDuration(strings.TrimPrefix(s, "@every "))
		return err
	}
	parts := strings.Fields(s)
	if len(parts) != 5 {
		return fmt.Errorf("expected exactly 5 fields, found %d: %s", len(parts), s)
	}
	for i, p := range parts {
		f := cronFields[i]
		for _, item := range strings.Split(p, ",") {
			if err := checkCronItem(item, f.lo, f.hi, f.names); err != nil {
				return fmt.Errorf("failed to parse %s field %q: %w", f.name, p, err)
			}
		}
	}
	return nil
}

func checkCronItem(item string, lo, hi int, names []string) error {
	rng, step, hasStep := strings.Cut(item, "/")
	if hasStep {
		if n, err := strconv.Atoi(step); err != nil || n <= 0 {
			return fmt.Errorf("bad step %q", step)
		}
	}
	if rng == "*" || rng == "?" {
		return nil
	}
	a, b, isRange := strings.Cut(rng, "-")
	for _, v := range []string{a, b} {
		if v == "" && !isRange && v == b {
			continue
		}
		if _, err := cronValue(v, lo, hi, names); err != nil {
			return err
		}
	}
	return nil
}

func cronValue(v string, lo, hi int, names []string) (int, error) {
	for i, n := range names {
		if strings.EqualFold(v, n) {
			return i + lo, nil
		}
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("bad value %q", v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("value %d out of range [%d, %d]", n, lo, hi)
	}
	return n, nil
}
