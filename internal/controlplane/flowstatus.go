package controlplane

import (
	"context"
	"time"

	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-sh/skiff/internal/flowcontrol"
	"github.com/skiff-sh/skiff/internal/registry"
	"github.com/skiff-sh/skiff/internal/storage"
)

// flowStatusSettle lets a burst of flow schema and priority level changes
// (the bootstrap objects, a kubectl apply of several) end before the
// statuses are written once for all of them.
const flowStatusSettle = 50 * time.Millisecond

// keepFlowSchemaStatus keeps every FlowSchema's Dangling condition as
// upstream's priority and fairness configuration controller does (kubectl
// shows it as MISSINGPL): after each change of a schema or a level, the
// schemas whose condition is out of date are written. A failed write is
// tried again a second later.
func (s *server) keepFlowSchemaStatus(ctx context.Context, changed <-chan struct{}) {
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-retry.C:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(flowStatusSettle):
		}
		if err := syncFlowSchemaStatus(ctx, s.reg, metav1.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("flow schema status", "err", err)
			retry.Reset(time.Second)
		}
	}
}

// syncFlowSchemaStatus writes the Dangling condition of each flow schema
// whose stored one differs from what the priority levels now say.
func syncFlowSchemaStatus(ctx context.Context, reg *registry.Registry, now metav1.Time) error {
	gv := flowcontrolv1.SchemeGroupVersion
	fsRes, plRes := reg.Lookup(gv.WithResource("flowschemas")), reg.Lookup(gv.WithResource("prioritylevelconfigurations"))
	levels := map[string]bool{}
	pls, _ := reg.Cache(plRes).Snapshot(storage.Filter{})
	for _, o := range pls {
		levels[o.Obj.(*flowcontrolv1.PriorityLevelConfiguration).Name] = true
	}
	schemas, _ := reg.Cache(fsRes).Snapshot(storage.Filter{})
	for _, o := range schemas {
		fs := o.Obj.(*flowcontrolv1.FlowSchema)
		want := flowcontrol.Dangling(fs, levels[fs.Spec.PriorityLevelConfiguration.Name], now)
		if _, changed := flowcontrol.WithCondition(fs.Status, want); !changed {
			continue
		}
		_, _, err := reg.Update(ctx, fsRes, "", fs.Name, func(cur runtime.Object) (runtime.Object, error) {
			next := cur.(*flowcontrolv1.FlowSchema).DeepCopy()
			next.Status, _ = flowcontrol.WithCondition(next.Status, want)
			return next, nil
		}, registry.WriteOptions{Subresource: "status", FieldManager: "api-priority-and-fairness-config-consumer-v1"}, false)
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}
