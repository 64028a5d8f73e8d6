package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// Adopting a valid token: a native sidecar restarted in its pod (OOM kill, crash, the kubelet's
// restart) finds on the emptyDir the token it wrote before. Refresh mode keeps it when it is ours and
// still good, and schedules its renewal, instead of asking the tenant again: 500 sidecars restarted
// together then make no request at all.

// adopt is refresh mode's start when BEARER_TOKEN_FILE already holds a token: it returns the token to
// keep fresh, received now as far as the schedule is concerned, and true when [adoptable] says the
// file is ours and good for longer than the renewal margin (or the last attempt's room, if longer);
// false otherwise, and the file is then replaced as before. lost is true when the file is ours
// ([ownToken]) but expired or about to: the last process's renewals failed, and the first token is
// requested as in a throttled fleet ([throttledFailures]). It logs which, and why not; nothing when
// there is no file. It makes no request.
func adopt(cfg config, info sourceInfo, log *slog.Logger, now time.Time) (tok issued, ok, lost bool) {
	facts, ok := readTokenFileFacts(cfg.tokenFile, cfg.format)
	if !ok {
		return issued{}, false, false
	}
	minValidity := max(refreshPolicy.margin, refreshPolicy.lastAttempt)
	why := "the credential names no tenant or client ID"
	if info.tenant != "" && info.clientID != "" {
		why = ownToken(facts, os.Geteuid(), cfg.fileMode, cfg.audience, info.tenant, info.clientID, now)
		if why == "" {
			why = validFor(facts.claims, minValidity, now)
			lost = why != ""
		}
	}
	if why != "" {
		log.Info("replacing the token file", slices.Concat(info.who, []any{"file", cfg.tokenFile, "reason", why})...)
		return issued{}, false, lost
	}
	var matched string
	for _, a := range facts.claims.aud {
		if sameAudience(a, cfg.audience) {
			matched = a
			break
		}
	}
	log.Info("kept the access token in the token file: ours, and valid; no request", slices.Concat(info.who, []any{"resource", cfg.resource,
		"audience", matched, "expires", timestamp(facts.claims.expiry), "file", cfg.tokenFile})...)
	return issued{tokenClaims: tokenClaims{matchedAudience: matched, expiry: facts.claims.expiry}, received: now}, true, false
}

// tokenFileFacts is what adopting looks at in the file at BEARER_TOKEN_FILE: its type, owner and
// permission bits, and its content's claims.
type tokenFileFacts struct {
	regular bool
	uid     int // owner
	mode    fs.FileMode
	claims  jwtClaims
	err     error // reading or parsing it; nil when claims hold its claims
}

// adoptable decides whether refresh mode keeps the token file described by f instead of requesting a
// token: a regular file with this process's owner uid and the mode BEARER_TOKEN_FILE_MODE asks for
// (as this program writes it), holding a JWT for audience (the check's rule) issued to tenant and
// clientID (case-insensitive: GUIDs), valid for more than minValidity from now, and valid already
// (nbf within the clock skew allowed). It returns "" when it is, and otherwise why not, for the log.
// A tenant given as a domain name never matches the token's "tid", a GUID: such a file is replaced.
func adoptable(f tokenFileFacts, uid int, mode fs.FileMode, audience, tenant, clientID string, minValidity time.Duration, now time.Time) string {
	if why := ownToken(f, uid, mode, audience, tenant, clientID, now); why != "" {
		return why
	}
	return validFor(f.claims, minValidity, now)
}

// validFor returns "" when c's token is valid for more than minValidity from now, and otherwise why
// not: expired, or expiring within minValidity.
func validFor(c jwtClaims, minValidity time.Duration, now time.Time) string {
	switch {
	case !c.expiry.After(now):
		return "expired at " + timestamp(c.expiry)
	case c.expiry.Sub(now) <= minValidity:
		return fmt.Sprintf("expires at %s, within %s", timestamp(c.expiry), minValidity)
	}
	return ""
}

// ownToken is [adoptable] without the expiry: "" when f is a token file this program wrote for this
// credential and audience (as adoptable says), valid already, whether or not it has expired; otherwise
// why not.
func ownToken(f tokenFileFacts, uid int, mode fs.FileMode, audience, tenant, clientID string, now time.Time) string {
	c := f.claims
	switch {
	case !f.regular:
		return "not a regular file"
	case f.uid != uid:
		return fmt.Sprintf("owned by uid %d, not this process's %d", f.uid, uid)
	case f.mode != mode:
		return fmt.Sprintf("mode %04o, not BEARER_TOKEN_FILE_MODE's %04o", f.mode, mode)
	case f.err != nil:
		return f.err.Error()
	case !slices.ContainsFunc(c.aud, func(a string) bool { return sameAudience(a, audience) }):
		return "for another audience"
	case !strings.EqualFold(c.tenant, tenant):
		return "for another tenant"
	case !strings.EqualFold(c.clientID, clientID):
		return "for another client ID"
	case notYetValid(c.notBefore, now) != nil:
		return "not valid yet (nbf)"
	}
	return ""
}

// maxTokenFileSize bounds the read of a token file found at start: an access token is a few KiB.
const maxTokenFileSize = 64 << 10

// readTokenFileFacts reads what [adoptable] looks at in the file at path, without following a symbolic
// link, and at most maxTokenFileSize bytes. ok is false when there is no file at all.
func readTokenFileFacts(path string, format tokenFormat) (facts tokenFileFacts, ok bool) {
	f, err := openTokenFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return facts, false
	}
	if err != nil {
		return tokenFileFacts{err: fmt.Errorf("unreadable: %w", pathErr(err))}, true
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return tokenFileFacts{err: fmt.Errorf("unreadable: %w", pathErr(err))}, true
	}
	facts = tokenFileFacts{regular: info.Mode().IsRegular(), mode: info.Mode().Perm(), uid: fileOwner(info)}
	if !facts.regular {
		return facts, true
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFileSize+1))
	switch {
	case err != nil:
		facts.err = fmt.Errorf("unreadable: %w", pathErr(err))
	case len(data) > maxTokenFileSize:
		facts.err = fmt.Errorf("larger than %d bytes", maxTokenFileSize)
	case len(data) == 0:
		facts.err = errors.New("empty")
	default:
		var token string // in the file's format, BEARER_TOKEN_FORMAT or the entry's
		if token, facts.err = format.extract(string(data)); facts.err == nil {
			facts.claims, facts.err = parseClaims(token)
		}
	}
	return facts, true
}
