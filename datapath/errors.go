package datapath

import (
	"errors"
	"fmt"
)

var (
	// ErrNotSupported is returned when the running kernel lacks a feature.
	ErrNotSupported = errors.New("not supported by the running kernel")
	// ErrExists is returned when an object with the requested name exists.
	ErrExists = errors.New("already exists")
	// ErrNotFound is returned when a named object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNoNetkit is returned when the running kernel has no netkit
	// devices; it wraps ErrNotSupported.
	ErrNoNetkit = fmt.Errorf("no netkit devices: %w", ErrNotSupported)
	// ErrLinkDown is returned when traffic waits for a link that is
	// administratively down.
	ErrLinkDown = errors.New("is down")
)

// kindError is a complete message for the user that still matches one of
// the sentinel errors with errors.Is.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return errors.Is(e.kind, target) }

// notSupported explains what the kernel lacks and what to do.
func notSupported(format string, args ...any) error {
	return &kindError{fmt.Sprintf(format, args...), ErrNotSupported}
}

// exists says which name is taken and what to do.
func exists(format string, args ...any) error {
	return &kindError{fmt.Sprintf(format, args...), ErrExists}
}
