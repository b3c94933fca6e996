package procmem

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Thresholds of ReturnWhenIdle.
const (
	idleCheckInterval = 30 * time.Second
	// idleAllocBytes: a process that allocated less than this in one
	// interval is quiet; a burst is over.
	idleAllocBytes = 32 << 20
	// idleFreeBytes: heap the runtime holds without using it, or garbage
	// it has not collected yet, that is worth a forced collection to give
	// back.
	idleFreeBytes = 64 << 20
)

// memSample is what ReturnWhenIdle reads each interval.
type memSample struct {
	Allocs uint64 // bytes allocated since the start (cumulative)
	Free   uint64 // heap the runtime holds, unused and not yet returned
	// Garbage is what the heap's objects hold beyond what the last
	// collection found live: a process that went quiet after a burst does
	// not allocate enough to start the collection that would free it.
	Garbage uint64
}

// shouldReturn: the process was quiet over the last interval and holds a
// lot of free heap or uncollected garbage, as after a burst. Go's scavenger
// returns free memory only gradually, and a collection that lowers the
// heap goal waits for allocation an idle process does not do, so after
// scaling 2,000 pods up and down a server held three times its live heap
// for minutes (and after installing 200 definitions, whose building left
// garbage in use, three and a half times).
func shouldReturn(prev, cur memSample) bool {
	return cur.Allocs-prev.Allocs < idleAllocBytes && (cur.Free >= idleFreeBytes || cur.Garbage >= idleFreeBytes)
}

// ReturnWhenIdle gives free heap back to the kernel once a burst of work is
// over, until ctx ends. Under steady load it does nothing: the heap is
// reused there, and returning it would only cost page faults.
func ReturnWhenIdle(ctx context.Context, log *slog.Logger) {
	prev := readMem()
	wait.UntilWithContext(ctx, func(context.Context) {
		cur := readMem()
		if shouldReturn(prev, cur) {
			start := time.Now()
			debug.FreeOSMemory()
			log.Debug("returned idle heap to the kernel", "free_bytes", cur.Free, "took", time.Since(start).String())
			cur = readMem()
		}
		prev = cur
	}, idleCheckInterval)
}

func readMem() memSample {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	m := memSample{Allocs: s[0].Value.Uint64(), Free: s[1].Value.Uint64()}
	if objects, live := s[2].Value.Uint64(), s[3].Value.Uint64(); objects > live {
		m.Garbage = objects - live
	}
	return m
}
