package admission

import "context"

type warningsKey struct{}

// WithWarnings gives plugins a way to warn the client (the API server
// turns each warning into a Warning header kubectl prints).
func WithWarnings(ctx context.Context, sink func(string)) context.Context {
	return context.WithValue(ctx, warningsKey{}, sink)
}

// Warn sends msg to the client of the request ctx belongs to, if any.
func Warn(ctx context.Context, msg string) {
	if sink, ok := ctx.Value(warningsKey{}).(func(string)); ok {
		sink(msg)
	}
}
