package datapath

import "errors"

var (
	// ErrNotSupported is returned when the running kernel lacks a feature.
	ErrNotSupported = errors.New("not supported by the running kernel")
	// ErrExists is returned when an object with the requested name exists.
	ErrExists = errors.New("already exists")
	// ErrNotFound is returned when a named object does not exist.
	ErrNotFound = errors.New("not found")
)

// notSupportedError explains what a kernel lacks and what to do; it
// matches ErrNotSupported with errors.Is.
type notSupportedError struct{ msg string }

func (e *notSupportedError) Error() string        { return e.msg }
func (e *notSupportedError) Is(target error) bool { return target == ErrNotSupported }
