package flowcontrol

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func bootstrapped(seats int) *Controller {
	c := &Controller{Seats: seats, QueueWait: 5 * time.Second}
	for _, pl := range PriorityLevels() {
		c.SetPriorityLevel(&pl)
	}
	for _, fs := range FlowSchemas() {
		c.SetFlowSchema(&fs)
	}
	return c
}

func TestClassify(t *testing.T) {
	c := bootstrapped(600)
	authn := []string{"system:authenticated"}
	for _, tc := range []struct {
		name         string
		r            Request
		schema, flow string
	}{
		{"the admin", Request{User: "system:admin", Groups: []string{"system:masters", "system:authenticated"}, Verb: "list", IsResource: true, Resource: "pods", Namespace: "a"}, "exempt", "exempt"},
		{"a probe", Request{User: "system:anonymous", Groups: []string{"system:unauthenticated"}, Verb: "get", Path: "/readyz"}, "probes", "probes"},
		{"a node's lease", Request{User: "system:node:n1", Groups: []string{"system:nodes", "system:authenticated"}, Verb: "update", IsResource: true, APIGroup: "coordination.k8s.io", Resource: "leases", Namespace: "kube-node-lease"}, "system-node-high", "system-node-high\x00system:node:n1"},
		{"a node's pods", Request{User: "system:node:n1", Groups: []string{"system:nodes", "system:authenticated"}, Verb: "list", IsResource: true, Resource: "pods"}, "system-nodes", "system-nodes\x00system:node:n1"},
		{"a controller", Request{User: "system:serviceaccount:kube-system:job-controller", Groups: []string{"system:serviceaccounts", "system:authenticated"}, Verb: "create", IsResource: true, Resource: "pods", Namespace: "a"}, "kube-system-service-accounts", "kube-system-service-accounts\x00system:serviceaccount:kube-system:job-controller"},
		{"a workload's account", Request{User: "system:serviceaccount:a:default", Groups: []string{"system:serviceaccounts", "system:authenticated"}, Verb: "get", IsResource: true, Resource: "configmaps", Namespace: "a"}, "service-accounts", "service-accounts\x00system:serviceaccount:a:default"},
		{"a user", Request{User: "alice", Groups: authn, Verb: "list", IsResource: true, Resource: "pods", Namespace: "a"}, "global-default", "global-default\x00alice"},
		{"a user's URL", Request{User: "alice", Groups: authn, Verb: "get", Path: "/version"}, "global-default", "global-default\x00alice"},
	} {
		d, flow := c.Classify(tc.r)
		if d.Schema == nil || d.Schema.Name != tc.schema || flow != tc.flow {
			t.Errorf("%s: %v %q, want %s %q", tc.name, d.Schema.GetName(), flow, tc.schema, tc.flow)
		}
	}
	// A schema naming a missing level falls to catch-all.
	fs := FlowSchemas()[6]
	fs.Name, fs.Spec.MatchingPrecedence, fs.Spec.PriorityLevelConfiguration.Name = "mine", 3, "missing"
	c.SetFlowSchema(&fs)
	if d, _ := c.Classify(Request{User: "system:kube-controller-manager", Verb: "get", IsResource: true, Resource: "pods", Namespace: "a"}); d.Level.Name != CatchAll {
		t.Errorf("missing level: %s", d.Level.Name)
	}
}

func TestSeatsShared(t *testing.T) {
	stats := bootstrapped(600).LevelStats()
	// 245 shares in all: workload-low's 100 get ceil(600*100/245) seats.
	for name, want := range map[string]int{"workload-low": 245, "global-default": 49, "catch-all": 13, "leader-election": 25} {
		if got := stats[name].Seats; got != want {
			t.Errorf("%s: %d seats, want %d", name, got, want)
		}
	}
	if _, ok := stats["exempt"]; ok {
		t.Error("the exempt level has seats")
	}
}

func limitedLevel(seats, queues, hand, length int32) *level {
	lv := &level{name: "l"}
	lv.configure(int(seats), flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeQueue,
		Queuing: &flowcontrolv1.QueuingConfiguration{Queues: queues, HandSize: hand, QueueLengthLimit: length}})
	return lv
}

// One flow's flood does not starve another: when a seat frees, the queues
// take turns.
func TestFairness(t *testing.T) {
	lv := limitedLevel(1, 8, 1, 50)
	ctx := context.Background()
	hold, err := lv.admit(ctx, "busy", 1)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	enter := func(flow string) {
		defer wg.Done()
		done, err := lv.admit(ctx, flow, 1)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		order = append(order, flow)
		mu.Unlock()
		done()
	}
	for range 5 {
		wg.Add(1)
		go enter("busy")
	}
	for lv.stats().Waiting < 5 {
		time.Sleep(time.Millisecond)
	}
	wg.Add(1)
	go enter("quiet")
	for lv.stats().Waiting < 6 {
		time.Sleep(time.Millisecond)
	}
	hold()
	wg.Wait()
	if len(order) != 6 {
		t.Fatalf("order: %v", order)
	}
	pos := -1
	for i, f := range order {
		if f == "quiet" {
			pos = i
		}
	}
	if pos < 0 || pos > 1 {
		t.Errorf("the quiet flow was served %dth after a flood of 5: %v", pos+1, order)
	}
}

// A full queue, a rejecting level and a wait that runs out are refusals.
func TestRejections(t *testing.T) {
	lv := limitedLevel(1, 1, 1, 1)
	ctx := context.Background()
	hold, _ := lv.admit(ctx, "a", 1)
	defer hold()
	wctx, cancel := context.WithCancel(ctx)
	go func() { _, _ = lv.admit(wctx, "a", 1) }()
	for lv.stats().Waiting < 1 {
		time.Sleep(time.Millisecond)
	}
	if _, err := lv.admit(ctx, "a", 1); !errors.Is(err, ErrRejected) {
		t.Errorf("a full queue: %v", err)
	}
	cancel()
	for lv.stats().Waiting > 0 {
		time.Sleep(time.Millisecond)
	}
	short, stop := context.WithTimeout(ctx, 10*time.Millisecond)
	defer stop()
	if _, err := lv.admit(short, "b", 1); !errors.Is(err, ErrRejected) {
		t.Errorf("a wait that ran out: %v", err)
	}
	rej := &level{name: "r"}
	rej.configure(1, flowcontrolv1.LimitResponse{Type: flowcontrolv1.LimitResponseTypeReject})
	h, _ := rej.admit(ctx, "x", 1)
	defer h()
	if _, err := rej.admit(ctx, "x", 1); !errors.Is(err, ErrRejected) {
		t.Errorf("a rejecting level: %v", err)
	}
}

func TestDanglingCondition(t *testing.T) {
	fs := &flowcontrolv1.FlowSchema{Spec: flowcontrolv1.FlowSchemaSpec{PriorityLevelConfiguration: flowcontrolv1.PriorityLevelConfigurationReference{Name: "gold"}}}
	t0, t1 := metav1.Unix(100, 0), metav1.Unix(200, 0)
	found := Dangling(fs, true, t0)
	if found.Status != flowcontrolv1.ConditionFalse || found.Reason != "Found" ||
		found.Message != `This FlowSchema references the PriorityLevelConfiguration object named "gold" and it exists` {
		t.Errorf("found: %+v", found)
	}
	st, changed := WithCondition(flowcontrolv1.FlowSchemaStatus{}, found)
	if !changed || len(st.Conditions) != 1 {
		t.Fatalf("first condition: %+v %v", st, changed)
	}
	if _, changed := WithCondition(st, Dangling(fs, true, t1)); changed {
		t.Error("the same condition at a later time counts as a change")
	}
	missing := Dangling(fs, false, t1)
	st2, changed := WithCondition(st, missing)
	if !changed || len(st2.Conditions) != 1 || st2.Conditions[0].Status != flowcontrolv1.ConditionTrue || st2.Conditions[0].Reason != "NotFound" ||
		!st2.Conditions[0].LastTransitionTime.Equal(&t1) {
		t.Errorf("level deleted: %+v", st2)
	}
}

// A wide request takes several seats: it waits until they are all free,
// narrower requests behind it wait their turn, and one wider than the
// level runs alone on all of its seats.
func TestWidth(t *testing.T) {
	for _, c := range []struct {
		verb   string
		stored int
		want   int
	}{
		{"get", 5000, 1}, {"create", 0, 1}, {"list", 0, 1}, {"list", 100, 1}, {"list", 101, 2},
		{"list", 950, 10}, {"list", 100000, 10}, {"watch", 250, 3},
	} {
		if got := Width(c.verb, c.stored); got != c.want {
			t.Errorf("Width(%s, %d) = %d, want %d", c.verb, c.stored, got, c.want)
		}
	}

	lv := limitedLevel(4, 8, 2, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wide, err := lv.admit(ctx, "a", 3)
	if err != nil || lv.stats().Executing != 3 {
		t.Fatalf("a width-3 request: %v, executing %d", err, lv.stats().Executing)
	}
	got := make(chan string, 2)
	go func() {
		done, err := lv.admit(ctx, "b", 2)
		if err == nil {
			got <- "b"
			defer done()
			<-ctx.Done()
		}
	}()
	poll := func(cond func() bool) {
		t.Helper()
		for range 1000 {
			if cond() {
				return
			}
			time.Sleep(time.Millisecond)
		}
		t.Fatalf("level stats: %+v", lv.stats())
	}
	poll(func() bool { return lv.stats().Waiting == 1 })
	select {
	case <-got:
		t.Fatal("a width-2 request ran beside a width-3 one on four seats")
	default:
	}
	wide()
	if <-got != "b" || lv.stats().Executing != 2 {
		t.Fatalf("after the wide request: %+v", lv.stats())
	}
	// Two seats are free: a width-2 request runs at once.
	d2, err := lv.admit(ctx, "c", 2)
	if err != nil || lv.stats().Executing != 4 {
		t.Fatalf("a second width-2 request: %v %+v", err, lv.stats())
	}
	d2()

	huge := limitedLevel(4, 8, 2, 10)
	all, err := huge.admit(ctx, "x", 10)
	if err != nil || huge.stats().Executing != 4 {
		t.Fatalf("a request wider than its level: %v %+v", err, huge.stats())
	}
	all()
	if huge.stats().Executing != 0 {
		t.Errorf("seats after it: %+v", huge.stats())
	}
}

// When seats free, the waiting queue whose requests hold the fewest seats
// goes first: a light flow's request is not kept behind a heavy flow's
// next one.
func TestLightFlowFirst(t *testing.T) {
	lv := limitedLevel(2, 64, 1, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h1, err := lv.admit(ctx, "heavy", 1)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := lv.admit(ctx, "heavy", 1)
	if err != nil {
		t.Fatal(err)
	}
	order := make(chan string, 2)
	enter := func(flow string) {
		done, err := lv.admit(ctx, flow, 1)
		if err != nil {
			t.Error(err)
			return
		}
		order <- flow
		<-ctx.Done()
		done()
	}
	go enter("heavy") // queued first
	for lv.stats().Waiting != 1 {
		time.Sleep(time.Millisecond)
	}
	go enter("light")
	for lv.stats().Waiting != 2 {
		time.Sleep(time.Millisecond)
	}
	h1()
	if first := <-order; first != "light" {
		t.Errorf("first served when a seat freed: %s, want light (heavy holds a seat already)", first)
	}
	h2()
	if second := <-order; second != "heavy" {
		t.Errorf("then: %s", second)
	}
}
