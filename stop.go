package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Stopping: the deadline (BEARER_TOKEN_TIMEOUT) and the signals end a job whatever it waits on.

// stopGrace is how long [untilDone] lets a job whose context is done return its own error, which says
// best what it was doing, before giving up on it: ample for a job that honours its context even on a
// loaded machine, and short enough that SIGTERM still ends the program within a second.
const stopGrace = 500 * time.Millisecond

// untilDone runs job in a goroutine and returns its error, or, when ctx is done (a signal, the
// deadline) and job has not returned stopGrace later, an error with exit status 1 that gives ctx's
// cause and wraps errStuck. Everything job waits on honours ctx but file system calls, which a hung FUSE or network file
// system can block for good: this way the deadline and the signals end the run whatever it waits on.
// The abandoned job must not publish anything once ctx is done (see [writeTokenFile]); main exits.
func untilDone(ctx context.Context, job func() error) error {
	done := make(chan error, 1)
	go func() { done <- job() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done:
		return err
	case <-time.After(stopGrace):
		return withExit(exitConfig, fmt.Errorf("stopped: %w; %w", context.Cause(ctx), errStuck))
	}
}

// errStuck is in [untilDone]'s error when it gave up on its job.
var errStuck = errors.New("a file system call it waited on did not return (a hung network or FUSE mount?)")
