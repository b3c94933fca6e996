package component

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// recorder makes components that note their starts and stops in one trace.
type recorder struct{ trace []string }

func (r *recorder) comp(name string, after []string, startErr error) Component {
	return Component{
		Name: name, After: after, StopTimeout: time.Second,
		Start: func(context.Context) error { r.trace = append(r.trace, "start "+name); return startErr },
		Stop:  func(context.Context) error { r.trace = append(r.trace, "stop "+name); return nil },
	}
}

func TestRun(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name    string
		list    func(r *recorder) []Component
		fail    error // reported on the failure channel after start
		wantErr string
		want    []string
	}{
		{
			name: "started in order, stopped in reverse when the context ends",
			list: func(r *recorder) []Component {
				return []Component{r.comp("etcd", nil, nil), r.comp("api", []string{"etcd"}, nil), r.comp("controllers", []string{"api"}, nil)}
			},
			want: []string{"start etcd", "start api", "start controllers", "stop controllers", "stop api", "stop etcd"},
		},
		{
			name: "a failed start stops only what started before it",
			list: func(r *recorder) []Component {
				return []Component{r.comp("etcd", nil, nil), r.comp("api", []string{"etcd"}, boom), r.comp("controllers", []string{"api"}, nil)}
			},
			wantErr: "api: boom",
			want:    []string{"start etcd", "start api", "stop etcd"},
		},
		{
			name: "a failure while running ends the run with its error",
			list: func(r *recorder) []Component {
				return []Component{r.comp("etcd", nil, nil), r.comp("api", []string{"etcd"}, nil)}
			},
			fail:    boom,
			wantErr: "boom",
			want:    []string{"start etcd", "start api", "stop api", "stop etcd"},
		},
		{
			name: "a component listed before what it comes after is refused, nothing starts",
			list: func(r *recorder) []Component {
				return []Component{r.comp("api", []string{"etcd"}, nil), r.comp("etcd", nil, nil)}
			},
			wantErr: "component api comes after etcd, which is not listed before it",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			list := tc.list(r)
			failed := make(chan error, 1)
			if tc.fail != nil {
				failed <- tc.fail
			} else {
				// The process is told to stop once everything is up.
				list = append(list, Component{Name: "signal", Start: func(context.Context) error { cancel(); return nil }})
			}
			err := Run(ctx, quiet, list, failed)
			if got := errString(err); !strings.Contains(got, tc.wantErr) || (tc.wantErr == "") != (err == nil) {
				t.Errorf("error %q, want %q", got, tc.wantErr)
			}
			if !slices.Equal(r.trace, tc.want) {
				t.Errorf("trace\n%v\nwant\n%v", r.trace, tc.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// A background component runs until its stop, not until the process's
// context ends, and a stop that outlasts its limit is reported.
func TestBackground(t *testing.T) {
	running := make(chan struct{})
	c := Background("worker", nil, time.Second, quiet, func(ctx context.Context) error {
		close(running)
		<-ctx.Done()
		return nil
	})
	startCtx, cancel := context.WithCancel(context.Background())
	if err := c.Start(startCtx); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-running
	ctx, done := context.WithTimeout(context.Background(), c.StopTimeout)
	defer done()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}

	stuck := Background("stuck", nil, 10*time.Millisecond, quiet, func(context.Context) error { select {} })
	if err := stuck.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx2, done2 := context.WithTimeout(context.Background(), stuck.StopTimeout)
	defer done2()
	if err := stuck.Stop(ctx2); err == nil {
		t.Error("a stop past its time limit reported no error")
	}
}
