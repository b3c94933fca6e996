// Package framework holds the scheduler's extension points, the per-cycle
// state and the node and pod views the plugins read. Plugins are pure
// functions over these types; all I/O lives in the scheduler package.
package framework

import (
	"errors"
	"strings"
)

// Code says what a plugin's verdict means for the pod's retries.
type Code int

const (
	// Success: the pod passes this plugin.
	Success Code = iota
	// Error: an internal failure; the pod is retried with back-off.
	Error
	// Unschedulable: the node does not fit now, but preemption or a
	// cluster change could make it fit.
	Unschedulable
	// UnschedulableAndUnresolvable: the node can never fit this pod, and
	// preempting pods on it would not help.
	UnschedulableAndUnresolvable
	// Wait: a Permit plugin holds the pod.
	Wait
	// Skip: the plugin has nothing to do for this pod (PreFilter and
	// PreScore), so its Filter or Score is not called.
	Skip
	// Pending: the pod waits for something outside the scheduler (a gate).
	Pending
)

var codeNames = []string{"Success", "Error", "Unschedulable", "UnschedulableAndUnresolvable", "Wait", "Skip", "Pending"}

func (c Code) String() string { return codeNames[c] }

// Status is a plugin's verdict. A nil *Status is Success, so the hot path
// allocates nothing when a node fits.
type Status struct {
	code    Code
	reasons []string
	err     error
	plugin  string
}

// NewStatus returns a status with the given code and reasons.
func NewStatus(code Code, reasons ...string) *Status {
	return &Status{code: code, reasons: reasons}
}

// AsStatus wraps an internal error.
func AsStatus(err error) *Status {
	if err == nil {
		return nil
	}
	return &Status{code: Error, reasons: []string{err.Error()}, err: err}
}

// Code returns the status code; nil is Success.
func (s *Status) Code() Code {
	if s == nil {
		return Success
	}
	return s.code
}

// IsSuccess reports a nil or Success status.
func (s *Status) IsSuccess() bool { return s.Code() == Success }

// IsSkip reports Skip.
func (s *Status) IsSkip() bool { return s.Code() == Skip }

// IsRejected reports Unschedulable, UnschedulableAndUnresolvable or Pending.
func (s *Status) IsRejected() bool {
	c := s.Code()
	return c == Unschedulable || c == UnschedulableAndUnresolvable || c == Pending
}

// Reasons are the user-facing reasons, as shown in FailedScheduling events.
func (s *Status) Reasons() []string {
	if s == nil {
		return nil
	}
	return s.reasons
}

// Message joins the reasons.
func (s *Status) Message() string {
	if s == nil {
		return ""
	}
	return strings.Join(s.reasons, ", ")
}

// Plugin names the plugin that returned the status.
func (s *Status) Plugin() string {
	if s == nil {
		return ""
	}
	return s.plugin
}

// WithPlugin records which plugin returned s.
func (s *Status) WithPlugin(name string) *Status {
	if s != nil {
		s.plugin = name
	}
	return s
}

// AsError returns the status as an error (nil for success and Skip).
func (s *Status) AsError() error {
	if s.IsSuccess() || s.IsSkip() {
		return nil
	}
	if s.err != nil {
		return s.err
	}
	return errors.New(s.Message())
}
