// Package component starts and stops a process's long-running parts as an
// ordered list: each is started after the ones before it are up, and they
// are stopped in reverse order, each within its own time limit, so that a
// part is never left without what it stands on.
package component

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Component is one part of a process.
type Component struct {
	// Name appears in logs and errors.
	Name string
	// After names the components this one stands on; they must come
	// earlier in the list (Run refuses a list where they do not).
	After []string
	// Start brings the component up and returns once the components after
	// it may start; the work continues in goroutines until Stop. A start
	// that fails stops the components already started.
	Start func(ctx context.Context) error
	// Stop brings it down; nil when nothing needs doing. It gets a context
	// that ends after StopTimeout.
	Stop        func(ctx context.Context) error
	StopTimeout time.Duration
}

// Run starts the components in order, waits until ctx ends or a component
// reports a failure on failed, then stops the started ones in reverse
// order. The error is the failure that ended the run, if any.
func Run(ctx context.Context, log *slog.Logger, components []Component, failed <-chan error) error {
	if err := CheckOrder(components); err != nil {
		return err
	}
	var started []Component
	defer func() { stop(log, started) }()
	for _, c := range components {
		if ctx.Err() != nil {
			return nil
		}
		t := time.Now()
		if err := c.Start(ctx); err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return nil
			}
			return fmt.Errorf("%s: %w", c.Name, err)
		}
		log.Debug("component started", "component", c.Name, "took", time.Since(t).Round(time.Microsecond).String())
		started = append(started, c)
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-failed:
		return err
	}
}

// CheckOrder reports a component listed before one it comes after.
func CheckOrder(components []Component) error {
	seen := map[string]bool{}
	for _, c := range components {
		for _, a := range c.After {
			if !seen[a] {
				return fmt.Errorf("component %s comes after %s, which is not listed before it", c.Name, a)
			}
		}
		seen[c.Name] = true
	}
	return nil
}

func stop(log *slog.Logger, started []Component) {
	for i := len(started) - 1; i >= 0; i-- {
		c := started[i]
		if c.Stop == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.StopTimeout)
		if err := c.Stop(ctx); err != nil {
			log.Warn("component did not stop cleanly", "component", c.Name, "err", err)
		}
		cancel()
	}
}

// Background is a component whose work is one blocking function: Start
// runs it in a goroutine with a context of its own, Stop cancels that
// context and waits for the function to return, at most timeout. An error
// the function returns is logged, not fatal: the process goes on serving.
func Background(name string, after []string, timeout time.Duration, log *slog.Logger, run func(ctx context.Context) error) Component {
	var cancel context.CancelFunc
	done := make(chan struct{})
	return Component{
		Name:  name,
		After: after,
		Start: func(context.Context) error {
			// Its own context: the process's ends before the stop order
			// begins, and this one must run until its turn to stop.
			var ctx context.Context
			ctx, cancel = context.WithCancel(context.Background())
			go func() {
				defer close(done)
				if err := run(ctx); err != nil && ctx.Err() == nil {
					log.Error("component stopped", "component", name, "err", err)
				}
			}()
			return nil
		},
		Stop: func(ctx context.Context) error {
			cancel()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return fmt.Errorf("still running after %s", timeout)
			}
		},
		StopTimeout: timeout,
	}
}

// Spawner is a component whose start launches goroutines bound to a context
// of its own, which Stop cancels without waiting for them (they hold
// nothing a later stop needs).
func Spawner(name string, after []string, start func(ctx context.Context) error) Component {
	var cancel context.CancelFunc = func() {}
	return Component{
		Name:  name,
		After: after,
		Start: func(context.Context) error {
			var ctx context.Context
			ctx, cancel = context.WithCancel(context.Background())
			return start(ctx)
		},
		Stop: func(context.Context) error { cancel(); return nil },
	}
}
