package storage

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/wait"
)

// DefaultDiskReserve is the free space under which the embedded etcd stops
// taking writes. etcd exits when its disk is full (a failed WAL or
// database write is fatal to it), so skiff refuses writes while there is
// still room for those in flight: a WAL segment is 8 MiB and one request
// at most 4 MiB.
const DefaultDiskReserve = 256 << 20

// Timing of the space guard.
const (
	spaceCheckInterval = time.Second
	defragInterval     = time.Hour
	// A database is worth defragmenting when at least this much of it,
	// and at least half of it, is free pages left by compaction.
	defragMinWaste = 64 << 20
)

// spaceObs is what the guard observes each round.
type spaceObs struct {
	Free    uint64 // bytes available on the data dir's file system
	Alarmed bool   // etcd's NOSPACE alarm is raised
	DBSize  int64  // the database file's size
	DBInUse int64  // of which pages hold data
	// DefragDue: the periodic defragmentation is due.
	DefragDue bool
}

// spacePlan is what the guard does about it, in this order.
type spacePlan struct {
	Raise  bool // raise NOSPACE: etcd refuses puts, serves reads and deletes
	Defrag bool // rewrite the database without its free pages
	Disarm bool // end NOSPACE: space is back
}

// planSpace decides, with hysteresis: writes stop below reserve and resume
// at twice the reserve, so a disk at the edge does not flap. Defragmenting
// copies the live data, so it runs only when the disk holds that copy.
func planSpace(o spaceObs, reserve uint64) spacePlan {
	var p spacePlan
	if o.Free < reserve {
		p.Raise = !o.Alarmed
		return p
	}
	waste := o.DBSize - o.DBInUse
	fragmented := waste >= defragMinWaste && 2*waste >= o.DBSize
	roomToCopy := o.Free >= uint64(max(o.DBInUse, 0))+reserve
	if o.Alarmed {
		if o.Free < 2*reserve {
			return p
		}
		p.Defrag = fragmented && roomToCopy
		p.Disarm = true
		return p
	}
	p.Defrag = o.DefragDue && fragmented && roomToCopy
	return p
}

// spaceGuard watches the embedded etcd's disk and database and acts on
// planSpace's decisions.
type spaceGuard struct {
	server  *etcdserver.EtcdServer
	dir     string
	reserve uint64
	log     *slog.Logger
	// lastDefrag is when the periodic defragmentation last ran.
	lastDefrag time.Time
}

func (g *spaceGuard) run(ctx context.Context) {
	g.lastDefrag = time.Now()
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := g.step(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("storage space guard", "err", err)
		}
	}, spaceCheckInterval)
}

// step observes, plans and acts once.
func (g *spaceGuard) step(ctx context.Context) error {
	o, err := g.observe()
	if err != nil {
		return err
	}
	p := planSpace(o, g.reserve)
	if p.Raise {
		if err := g.alarm(ctx, pb.AlarmRequest_ACTIVATE); err != nil {
			return err
		}
		g.log.Error("disk of the data dir is almost full: writes are refused until space is freed; reads continue",
			"dir", g.dir, "free_bytes", o.Free, "reserve_bytes", g.reserve)
	}
	if p.Defrag {
		if err := g.defrag(o); err != nil {
			return err
		}
	}
	if p.Disarm {
		if err := g.alarm(ctx, pb.AlarmRequest_DEACTIVATE); err != nil {
			return err
		}
		g.log.Info("disk space of the data dir is back: writes accepted again", "dir", g.dir, "free_bytes", o.Free)
	}
	return nil
}

func (g *spaceGuard) observe() (spaceObs, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(g.dir, &st); err != nil {
		return spaceObs{}, fmt.Errorf("statfs %s: %w", g.dir, err)
	}
	o := spaceObs{Free: st.Bavail * uint64(st.Bsize), DefragDue: time.Since(g.lastDefrag) >= defragInterval}
	for _, a := range g.server.Alarms() {
		if a.Alarm == pb.AlarmType_NOSPACE {
			o.Alarmed = true
		}
	}
	be := g.server.Backend()
	o.DBSize, o.DBInUse = be.Size(), be.SizeInUse()
	return o, nil
}

func (g *spaceGuard) alarm(ctx context.Context, action pb.AlarmRequest_AlarmAction) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := g.server.Alarm(ctx, &pb.AlarmRequest{Action: action, MemberID: uint64(g.server.MemberID()), Alarm: pb.AlarmType_NOSPACE})
	if err != nil {
		return fmt.Errorf("etcd alarm %s: %w", action, err)
	}
	return nil
}

// defrag rewrites the database. etcd serves nothing while it runs, which
// is why it waits for a database that is mostly free pages.
func (g *spaceGuard) defrag(o spaceObs) error {
	start := time.Now()
	g.lastDefrag = start
	if err := g.server.Backend().Defrag(); err != nil {
		return fmt.Errorf("defragment etcd database: %w", err)
	}
	g.log.Info("defragmented etcd database", "size_before", o.DBSize, "size_after", g.server.Backend().Size(), "took", time.Since(start).String())
	return nil
}
