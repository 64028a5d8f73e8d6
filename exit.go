package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// How a failure leaves the program: its exit status, carried by the error ([withExit]), and its
// reason as the termination message Kubernetes shows.

// Exit statuses, documented in the package comment and in README.md. They match the shell script this
// program replaces, but for 3, which -check added.
const (
	exitConfig       = 1
	exitCredential   = 2
	exitCheckFailed  = 3 // -check only: the token file fails the check
	exitRequest      = 10
	exitWrite        = 11
	exitTokenInvalid = 12
)

// exitError gives err the exit status code. run's errors carry one; anything else exits with status 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withExit returns err carrying exit status code, or nil if err is nil. An err that already carries a
// status keeps it: the innermost cause knows best.
func withExit(code int, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*exitError](err); ok {
		return err
	}
	return &exitError{code: code, err: err}
}

// exitStatus returns the exit status err carries: 0 for nil, 1 when it carries none.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	return exitConfig
}

// terminationLog is where Kubernetes reads a container's termination message by default
// (https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/).
const terminationLog = "/dev/termination-log"

// writeTerminationMessage writes err's text to path when path exists and is writable, and does nothing
// otherwise: outside Kubernetes there is no such file, and the log already has the reason. The text is
// made one line with every control character escaped ([escapeControl]): an error can quote a server
// certificate's names or a proxy's reason phrase, which "kubectl describe pod" would otherwise show as
// forged lines or hidden text. Kubernetes keeps at most 4096 bytes of it.
func writeTerminationMessage(path string, err error) {
	f, openErr := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if openErr != nil {
		return
	}
	msg := escapeControl("azure-rest-api-token: " + err.Error())
	if len(msg) > 4096 {
		msg = strings.ToValidUTF8(msg[:4096], "")
	}
	_, _ = io.WriteString(f, msg)
	_ = f.Close()
}

// escapeControl returns s with each byte that is not valid UTF-8 and each control, format (bidirectional
// overrides, zero-width characters) or line-separator character written as a Go escape (\n, \x1b,
// \u202e), and everything else, backslashes included, as it is.
func escapeControl(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}
