package cronjob

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/skiff-sh/skiff/internal/work"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/skiff-sh/skiff/internal/controller"
)

// TestCronJobOverTime steps a fake clock across a minute boundary: the
// first run of each every-minute CronJob is due at once, and at the next
// minute Allow runs alongside, Forbid waits, Replace swaps the running Job,
// the history limit keeps one finished Job, and a suspended CronJob never
// runs. No test waits on the wall clock.
func TestCronJobOverTime(t *testing.T) {
	start := time.Date(2026, 12, 5, 12, 0, 10, 0, time.UTC)
	clk := clocktesting.NewFakeClock(start)
	client := fake.NewClientset()
	// The fake API server stamps what a real one would: a UID and the time.
	n := 0
	client.PrependReactor("create", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		j := a.(k8stesting.CreateAction).GetObject().(*batchv1.Job)
		n++
		j.UID = types.UID("job-uid-" + string(rune('a'+n)))
		j.CreationTimestamp = metav1.NewTime(clk.Now())
		return false, nil, nil
	})
	shared := informers.NewSharedInformerFactory(client, 0)
	cc := &controller.Context{Client: client, Informers: shared, Events: record.NewBroadcaster(), Clock: clk, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctrl, err := New(cc)
	if err != nil {
		t.Fatal(err)
	}
	c := ctrl.(*Controller)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	shared.Start(ctx.Done())

	cronJob := func(name, outcome string, policy batchv1.ConcurrencyPolicy, suspend bool) {
		cj := &batchv1.CronJob{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("cj-" + name), CreationTimestamp: metav1.NewTime(start.Add(-time.Hour))},
			Spec: batchv1.CronJobSpec{Schedule: "* * * * *", ConcurrencyPolicy: policy, Suspend: ptr.To(suspend), SuccessfulJobsHistoryLimit: ptr.To[int32](1),
				JobTemplate: batchv1.JobTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"outcome": outcome}}}},
			Status: batchv1.CronJobStatus{LastScheduleTime: ptr.To(metav1.NewTime(start.Add(-2 * time.Minute)))},
		}
		if _, err := client.BatchV1().CronJobs("default").Create(ctx, cj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"allow", "forbid", "replace", "history", "paused"}
	cronJob("allow", "hang", batchv1.AllowConcurrent, false)
	cronJob("forbid", "hang", batchv1.ForbidConcurrent, false)
	cronJob("replace", "hang", batchv1.ReplaceConcurrent, false)
	cronJob("history", "succeed", batchv1.AllowConcurrent, false)
	cronJob("paused", "succeed", batchv1.AllowConcurrent, true)

	jobsOf := func(name string) []string {
		l, _ := client.BatchV1().Jobs("default").List(ctx, metav1.ListOptions{})
		var out []string
		for _, j := range l.Items {
			if ref := metav1.GetControllerOf(&j); ref != nil && ref.Name == name {
				out = append(out, j.Name)
			}
		}
		slices.Sort(out)
		return out
	}
	// settle waits until the informers hold what the fake API server
	// holds, then syncs every CronJob once at the fake clock's time.
	settle := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			cjs, _ := client.BatchV1().CronJobs("default").List(ctx, metav1.ListOptions{})
			jobs, _ := client.BatchV1().Jobs("default").List(ctx, metav1.ListOptions{})
			cachedCJ, _ := shared.Batch().V1().CronJobs().Lister().List(labels.Everything())
			cachedJobs, _ := shared.Batch().V1().Jobs().Lister().List(labels.Everything())
			if same(cjs.Items, cachedCJ) && same(jobs.Items, cachedJobs) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("informers never caught up with the fake API server")
			}
			time.Sleep(5 * time.Millisecond)
		}
		for _, n := range names {
			// A sync asks to come back at the next scheduled time.
			if err := c.sync(ctx, "default/"+n); err != nil && !errors.As(err, new(work.RetryAfter)) {
				t.Fatalf("sync %s: %v", n, err)
			}
		}
	}

	// The first minute: every CronJob that is not suspended runs once, for
	// 12:00, its lastScheduleTime.
	settle()
	first := "-" + strconv.FormatInt(start.Truncate(time.Minute).Unix()/60, 10)
	for _, n := range []string{"allow", "forbid", "replace", "history"} {
		if got := jobsOf(n); !slices.Equal(got, []string{n + first}) {
			t.Errorf("%s at 12:00: jobs %v, want [%s]", n, got, n+first)
		}
		cj, _ := client.BatchV1().CronJobs("default").Get(ctx, n, metav1.GetOptions{})
		if lst := cj.Status.LastScheduleTime; lst == nil || !lst.Time.Equal(start.Truncate(time.Minute)) {
			t.Errorf("%s: lastScheduleTime %v, want 12:00", n, lst)
		}
	}
	// history's Job succeeds.
	j, _ := client.BatchV1().Jobs("default").Get(ctx, "history"+first, metav1.GetOptions{})
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	j.Status.CompletionTime = ptr.To(metav1.NewTime(start.Add(20 * time.Second)))
	if _, err := client.BatchV1().Jobs("default").UpdateStatus(ctx, j, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Not yet the next minute: nothing new.
	clk.SetTime(start.Add(40 * time.Second))
	settle()
	if got := jobsOf("allow"); len(got) != 1 {
		t.Errorf("allow before 12:01: %v", got)
	}

	// 12:01.
	clk.SetTime(start.Add(55 * time.Second))
	settle()
	second := "-" + strconv.FormatInt(start.Truncate(time.Minute).Add(time.Minute).Unix()/60, 10)
	checks := []struct {
		name string
		want []string
	}{
		{"allow", []string{"allow" + first, "allow" + second}}, // runs alongside
		{"forbid", []string{"forbid" + first}},                 // waits for the running one
		{"replace", []string{"replace" + second}},              // the running one replaced
		{"paused", nil}, // suspended: never
	}
	for _, tc := range checks {
		if got := jobsOf(tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("%s at 12:01: jobs %v, want %v", tc.name, got, tc.want)
		}
	}
	// history: the new run starts beside the finished one (the history
	// limit keeps one finished Job), and lastSuccessfulTime stays.
	settle()
	if got := jobsOf("history"); !slices.Equal(got, []string{"history" + first, "history" + second}) {
		t.Errorf("history at 12:01: jobs %v (the finished one is kept: limit 1, and the new one runs)", got)
	}
	cj, _ := client.BatchV1().CronJobs("default").Get(ctx, "history", metav1.GetOptions{})
	if cj.Status.LastSuccessfulTime == nil || !cj.Status.LastSuccessfulTime.Time.Equal(start.Add(20*time.Second)) {
		t.Errorf("history: lastSuccessfulTime %v", cj.Status.LastSuccessfulTime)
	}
}

// same reports whether the informer's cache holds exactly the listed objects.
func same[T any](listed []T, cached []*T) bool {
	if len(listed) != len(cached) {
		return false
	}
	for _, c := range cached {
		if !slices.ContainsFunc(listed, func(l T) bool { return apiequality.Semantic.DeepEqual(l, *c) }) {
			return false
		}
	}
	return true
}
