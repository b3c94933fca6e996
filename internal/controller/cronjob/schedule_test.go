package cronjob

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/utils/ptr"
)

func TestDue(t *testing.T) {
	cj := &batchv1.CronJob{Spec: batchv1.CronJobSpec{Schedule: "*/15 * * * *"}}
	s, err := schedule(cj)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		since, now time.Time
		want       time.Time
		ok         bool
		missed     int
	}{
		{base, base.Add(10 * time.Minute), time.Time{}, false, 0},
		{base, base.Add(15 * time.Minute), base.Add(15 * time.Minute), true, 1},
		{base, base.Add(50 * time.Minute), base.Add(45 * time.Minute), true, 3},
	}
	for _, c := range cases {
		got, ok, missed := due(s, c.since, c.now)
		if !got.Equal(c.want) || ok != c.ok || missed != c.missed {
			t.Errorf("due(%v, %v) = %v %v %d, want %v %v %d", c.since, c.now, got, ok, missed, c.want, c.ok, c.missed)
		}
	}
}

func TestScheduleTimeZone(t *testing.T) {
	cj := &batchv1.CronJob{Spec: batchv1.CronJobSpec{Schedule: "0 9 * * *", TimeZone: ptr.To("Asia/Tokyo")}}
	s, err := schedule(cj)
	if err != nil {
		t.Fatal(err)
	}
	next := s.Next(time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Errorf("09:00 Tokyo after midnight UTC: %v, want %v", next.UTC(), want)
	}
	cj.Spec.TimeZone = ptr.To("Mars/Olympus")
	if _, err := schedule(cj); err == nil {
		t.Error("an unknown time zone is accepted")
	}
}

func TestJobName(t *testing.T) {
	cj := &batchv1.CronJob{}
	cj.Name = "nightly"
	j := newJob(cj, time.Unix(27_000_000*60, 0))
	if j.Name != "nightly-27000000" || j.Annotations[scheduledTimestampAnnotation] == "" {
		t.Errorf("job %s %v", j.Name, j.Annotations)
	}
}
