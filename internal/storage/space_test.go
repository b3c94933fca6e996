package storage

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestPlanSpace(t *testing.T) {
	const reserve = 100
	big, half := int64(2*defragMinWaste), int64(defragMinWaste)
	for _, c := range []struct {
		name string
		obs  spaceObs
		want spacePlan
	}{
		{"plenty of space", spaceObs{Free: 1000}, spacePlan{}},
		{"below the reserve: raise", spaceObs{Free: 99}, spacePlan{Raise: true}},
		{"below the reserve, raised already", spaceObs{Free: 99, Alarmed: true}, spacePlan{}},
		{"freed but under twice the reserve: wait", spaceObs{Free: 150, Alarmed: true}, spacePlan{}},
		{"freed: disarm", spaceObs{Free: 200, Alarmed: true}, spacePlan{Disarm: true}},
		{"freed, fragmented: defragment then disarm", spaceObs{Free: 1 << 40, Alarmed: true, DBSize: big, DBInUse: big - half}, spacePlan{Defrag: true, Disarm: true}},
		{"freed, fragmented, no room for the copy", spaceObs{Free: 200, Alarmed: true, DBSize: big, DBInUse: big - half}, spacePlan{Disarm: true}},
		{"periodic, fragmented", spaceObs{Free: 1 << 40, DBSize: big, DBInUse: big - half, DefragDue: true}, spacePlan{Defrag: true}},
		{"periodic, little waste", spaceObs{Free: 1 << 40, DBSize: big, DBInUse: big - 1<<20, DefragDue: true}, spacePlan{}},
		{"fragmented, not due", spaceObs{Free: 1 << 40, DBSize: big, DBInUse: big - half}, spacePlan{}},
	} {
		if got := planSpace(c.obs, reserve); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestSpaceGuard drives the guard over a real embedded etcd: a raised alarm
// refuses puts with 507 and keeps reads and deletes, the disarm takes puts
// again, and a database of mostly free pages is defragmented.
func TestSpaceGuard(t *testing.T) {
	dir := t.TempDir()
	e, err := StartEmbedded(EmbeddedConfig{DataDir: dir, Name: "test", withoutGuard: true}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c := e.Client()
	ctx := context.Background()
	var logs bytes.Buffer
	g := &spaceGuard{server: e.etcd.Server, dir: dir, reserve: 1 << 20, log: slog.New(slog.NewTextHandler(&logs, nil))}
	if _, err := c.Put(ctx, "/k/keep", "v"); err != nil {
		t.Fatal(err)
	}
	if err := g.alarm(ctx, pb.AlarmRequest_ACTIVATE); err != nil {
		t.Fatal(err)
	}
	_, err = c.Put(ctx, "/k/new", "v")
	if se := storageErr(err); err == nil || !strings.Contains(se.Error(), "storage is full") {
		t.Errorf("put under NOSPACE: %v", err)
	}
	if r, err := c.Get(ctx, "/k/keep"); err != nil || len(r.Kvs) != 1 {
		t.Errorf("read under NOSPACE: %v %v", r, err)
	}
	if _, err := c.Delete(ctx, "/k/keep"); err != nil {
		t.Errorf("delete under NOSPACE: %v", err)
	}
	// The disk has room (a temp dir): the guard's step disarms.
	if err := g.step(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "/k/new", "v"); err != nil {
		t.Errorf("put after disarm: %v", err)
	}
	if !strings.Contains(logs.String(), "writes accepted again") {
		t.Errorf("no log of the recovery: %s", logs.String())
	}

	// Fill the database, delete and compact: its pages are free but the
	// file keeps its size until the guard defragments.
	value := strings.Repeat("x", 1<<20)
	for i := range 100 {
		if _, err := c.Put(ctx, fmt.Sprintf("/fill/%03d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	r, err := c.Delete(ctx, "/fill/", clientv3.WithPrefix())
	if err != nil || r.Deleted != 100 {
		t.Fatalf("delete fill: %v %v", r, err)
	}
	if _, err := c.Compact(ctx, r.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	before := e.etcd.Server.Backend().Size()
	g.lastDefrag = g.lastDefrag.AddDate(-1, 0, 0) // due
	if err := g.step(ctx); err != nil {
		t.Fatal(err)
	}
	if after := e.etcd.Server.Backend().Size(); after*2 > before {
		t.Errorf("database %d bytes before, %d after the periodic defragmentation", before, after)
	}
}

// TestEtcdLogger: etcd's warnings and errors reach slog with their fields;
// its info chatter and slow-request warnings do not show at info level.
func TestEtcdLogger(t *testing.T) {
	var buf bytes.Buffer
	l := etcdLogger(slog.New(slog.NewTextHandler(&buf, nil)), new(atomic.Bool)).With(zap.String("member", "m1"))
	l.Info("starting")
	l.Warn("apply request took too long")
	l.Error("failed to write WAL", zap.Error(fmt.Errorf("no space left on device")))
	out := buf.String()
	for _, want := range []string{"level=ERROR", "component=etcd", `msg="failed to write WAL"`, "member=m1", `error="no space left on device"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s: %s", want, out)
		}
	}
	if strings.Contains(out, "starting") || strings.Contains(out, "took too long") {
		t.Errorf("chatter logged: %s", out)
	}
}
