package cronjob

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
)

// parser reads the standard five fields and the @-macros, as upstream.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// schedule parses the CronJob's schedule in its time zone (spec.timeZone,
// else the server's local time).
func schedule(cj *batchv1.CronJob) (cron.Schedule, error) {
	spec := cj.Spec.Schedule
	if tz := cj.Spec.TimeZone; tz != nil && !strings.Contains(spec, "TZ=") {
		if _, err := time.LoadLocation(*tz); err != nil {
			return nil, fmt.Errorf("unknown time zone %q: %w", *tz, err)
		}
		spec = "CRON_TZ=" + *tz + " " + spec
	}
	return parser.Parse(spec)
}

// maxMissed is how many missed start times upstream tolerates before it
// reports TooManyMissedTimes (it still starts the latest one).
const maxMissed = 100

// due returns the most recent scheduled time in (since, now], whether there
// is one, and how many scheduled times fell in that interval.
func due(s cron.Schedule, since, now time.Time) (time.Time, bool, int) {
	var last time.Time
	n := 0
	for t := s.Next(since); !t.IsZero() && !t.After(now); t = s.Next(t) {
		last = t
		n++
	}
	return last, !last.IsZero(), n
}
