package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"
)

// -check is the exec probe a distroless image needs (it has no shell): it reads the environment it
// needs and one small file, never the network or a credential, and says in one line whether the
// token file holds a token a reader can use for a while yet.

// defaultMinValidity is how long the token must still be valid for -check to pass, unless
// BEARER_TOKEN_MIN_VALIDITY says otherwise: the margin refresh mode renews within, so that a liveness
// probe fails only when renewals have failed for long enough for the token to be about to expire.
const defaultMinValidity = 5 * time.Minute

// checkFailure is an error of -check. main writes no termination message for it: a probe that runs
// every few seconds is not the container's main process, and its failures while the sidecar starts
// would stand as the reason for a later, unrelated exit.
type checkFailure struct{ err error }

func (e *checkFailure) Error() string { return e.err.Error() }
func (e *checkFailure) Unwrap() error { return e.err }

// runCheck is -check: it prints one line to stdout for each token file (BEARER_TOKEN_FILE, then those
// of BEARER_TOKEN_RESOURCES), saying why it fails the check, or until when its token is valid. It
// returns nil if every file is a regular file holding, in its format, one JWT whose "aud" is its
// audience (BEARER_TOKEN_AUDIENCE, else AZURE_RESOURCE; an entry's resource), by the rule the token
// was checked with before it was written, and whose "exp" is more than BEARER_TOKEN_MIN_VALIDITY
// (default 5 minutes) after now; otherwise a [checkFailure] with exit status 1 for the environment
// and 3 for a file.
func runCheck(getenv func(string) string, stdout io.Writer, now time.Time) error {
	files, minValidity, err := checkTargets(getenv)
	if err != nil {
		fmt.Fprintln(stdout, "azure-rest-api-token -check:", escapeControl(err.Error()))
		return &checkFailure{err}
	}
	var errs []error
	for _, f := range files {
		msg, err := checkTokenFileAt(f, minValidity, now)
		if err != nil {
			fmt.Fprintln(stdout, "azure-rest-api-token -check:", escapeControl(err.Error())) // the file's content may be anyone's
			errs = append(errs, err)
			continue
		}
		fmt.Fprintln(stdout, "azure-rest-api-token -check:", msg)
	}
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return &checkFailure{errs[0]}
	}
	return &checkFailure{withExit(exitCheckFailed, oneLine(errs))}
}

// checkedFile is a token file -check reads: its path, the audience its token must have, its format.
type checkedFile struct {
	path, audience string
	format         tokenFormat
}

// checkTargets reads -check's environment: the token files, and BEARER_TOKEN_MIN_VALIDITY. Its error
// names every variable that is wrong and carries exit status 1.
func checkTargets(getenv func(string) string) ([]checkedFile, time.Duration, error) {
	path, audience := getenv("BEARER_TOKEN_FILE"), getenv("BEARER_TOKEN_AUDIENCE")
	if audience == "" {
		audience = getenv("AZURE_RESOURCE")
	}
	minValidity := defaultMinValidity
	var errs []error
	if path == "" {
		errs = append(errs, errors.New("BEARER_TOKEN_FILE is not set"))
	} else if err := checkPath(path); err != nil {
		errs = append(errs, fmt.Errorf("BEARER_TOKEN_FILE %q: %w", path, err))
	}
	if audience == "" {
		errs = append(errs, errors.New("AZURE_RESOURCE is not set (nor BEARER_TOKEN_AUDIENCE)"))
	}
	if s := getenv("BEARER_TOKEN_MIN_VALIDITY"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("BEARER_TOKEN_MIN_VALIDITY %q: want a Go duration such as 5m or 90s", s))
		}
		minValidity = d
	}
	format, err := parseFormat(getenv("BEARER_TOKEN_FORMAT"))
	if err != nil {
		errs = append(errs, fmt.Errorf("BEARER_TOKEN_FORMAT: %w", err))
	}
	more, err := parseResources(getenv("BEARER_TOKEN_RESOURCES"), path)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, 0, withExit(exitConfig, oneLine(errs))
	}
	files := []checkedFile{{path, audience, format}}
	for _, e := range more {
		files = append(files, checkedFile{e.file, e.resource, e.format})
	}
	return files, minValidity, nil
}

// checkTokenFileAt does the work of [runCheck] for one file f and returns its line on success.
func checkTokenFileAt(f checkedFile, minValidity time.Duration, now time.Time) (string, error) {
	path, audience := f.path, f.audience
	data, err := readCredentialFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", withExit(exitCheckFailed, fmt.Errorf("token file %q does not exist", path))
	case err != nil:
		return "", withExit(exitCheckFailed, fmt.Errorf("reading token file %q: %w", path, err))
	case len(data) == 0:
		return "", withExit(exitCheckFailed, fmt.Errorf("token file %q is empty", path))
	}
	token, err := f.format.extract(string(data))
	if err != nil {
		return "", withExit(exitCheckFailed, fmt.Errorf("token file %q: %w", path, err))
	}
	c, err := parseClaims(token)
	if err != nil {
		return "", withExit(exitCheckFailed, fmt.Errorf("token file %q: %w", path, err))
	}
	auds, exp := c.aud, c.expiry
	if err := notYetValid(c.notBefore, now); err != nil {
		return "", withExit(exitCheckFailed, fmt.Errorf("token file %q: %w", path, err))
	}
	i := slices.IndexFunc(auds, func(a string) bool { return sameAudience(a, audience) })
	switch {
	case i < 0:
		return "", withExit(exitCheckFailed, fmt.Errorf("token file %q: %w", path, audienceError(auds, audience)))
	case exp.IsZero():
		return "", withExit(exitCheckFailed, fmt.Errorf("token file %q: the token has no \"exp\" claim", path))
	case !exp.After(now):
		return "", withExit(exitCheckFailed, fmt.Errorf("token file %q: the token expired %s ago, at %s",
			path, now.Sub(exp).Round(time.Second), timestamp(exp)))
	case exp.Sub(now) <= minValidity:
		return "", withExit(exitCheckFailed, fmt.Errorf("token file %q: the token expires in %s, at %s: not more than BEARER_TOKEN_MIN_VALIDITY (%s)",
			path, exp.Sub(now).Round(time.Second), timestamp(exp), minValidity))
	}
	return fmt.Sprintf("token file %q holds a token for %q valid until %s, for %s", path, auds[i], timestamp(exp), exp.Sub(now).Round(time.Second)), nil
}

// oneLine joins errs' texts with "; " into one error, for a message that names every problem at once.
func oneLine(errs []error) error {
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}
