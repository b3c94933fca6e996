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

type annotationsKey struct{}

// WithAnnotations gives plugins a way to annotate the request's audit
// event.
func WithAnnotations(ctx context.Context, sink func(key, value string)) context.Context {
	return context.WithValue(ctx, annotationsKey{}, sink)
}

// Annotate adds key=value to the audit event of the request ctx belongs
// to, if it is audited.
func Annotate(ctx context.Context, key, value string) {
	if sink, ok := ctx.Value(annotationsKey{}).(func(string, string)); ok {
		sink(key, value)
	}
}
