package storage

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// etcdLogger hands the embedded etcd's warnings and errors to skiff's log,
// tagged component=etcd, so a failing disk or a corrupt member is visible
// where an operator looks. etcd's info chatter stays out.
// Once closing is set (skiff is stopping etcd), its complaints about
// closed listeners are expected and go to debug.
func etcdLogger(log *slog.Logger, closing *atomic.Bool) *zap.Logger {
	return zap.New(&slogCore{log: log.With("component", "etcd"), closing: closing})
}

// slogCore is a zap core that writes through slog.
type slogCore struct {
	log     *slog.Logger
	closing *atomic.Bool
	fields  []zapcore.Field
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= zapcore.WarnLevel }

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log, closing: c.closing, fields: append(append([]zapcore.Field(nil), c.fields...), fs...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fs {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	level := etcdLevel(e)
	if c.closing != nil && c.closing.Load() {
		level = slog.LevelDebug
	}
	c.log.LogAttrs(context.Background(), level, e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

// routineEtcd are etcd warnings that say nothing to a skiff operator: slow
// requests (routine on a busy two-core machine), the loopback listener's
// set-up, and a new member's storage-version probe, which etcd retries
// until its first raft entry is applied.
var routineEtcd = []string{
	"took too long",
	"Running http and grpc server on single port",
	"simple token is not cryptographically signed",
	"Failed to detect schema version",
	"failed to update storage version",
}

// etcdLevel maps an etcd entry to a slog level.
func etcdLevel(e zapcore.Entry) slog.Level {
	for _, m := range routineEtcd {
		if strings.Contains(e.Message, m) {
			return slog.LevelDebug
		}
	}
	if e.Level >= zapcore.ErrorLevel {
		return slog.LevelError
	}
	return slog.LevelWarn
}
