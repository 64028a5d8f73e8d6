package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Refresh mode (BEARER_TOKEN_REFRESH=true) keeps the token file fresh for a pod that outlives a token,
// as a Kubernetes native sidecar. The shape is Vault Agent's and client-go's: one rule decides when to
// act ([renewalPolicy], pure functions of durations, tested as tables); the loop ([keepFresh]) only
// waits on one timer and acts; the file is replaced atomically ([publishRename]); and a failed renewal
// keeps the last good token in place while it is valid.

// renewalPolicy says when to renew a token and when to retry a failed renewal.
type renewalPolicy struct {
	// floor is the shortest wait before a renewal, so that a short-lived token, or one whose "exp"
	// looks near because the node's clock is ahead, cannot make a request storm.
	floor time.Duration
	// margin: renew at the latest this long before "exp", so that a -check with its default
	// BEARER_TOKEN_MIN_VALIDITY (the same 5 minutes) never fails while renewals succeed.
	margin time.Duration
	// jitter is the fraction by which a renewal held back by margin is moved earlier at random.
	jitter float64
	// retryBase and retryMax bound the decorrelated backoff of failed renewals: the range of Vault
	// Agent's lifetime watcher.
	retryBase, retryMax time.Duration
	// sameFloor is the shortest wait before renewing a token that a renewal got back unchanged, when
	// floor would put the next renewal past its expiry (see [renewalPolicy.renewSameAfter]).
	sameFloor time.Duration
	// spread is the share of the lifetime over which renewals are spread at random, around its middle
	// (see [renewalPolicy.renewAt]).
	spread float64
	// yieldShare: a refused renewal waits between half this share and this share of the validity left
	// (see [renewalPolicy.retryWait]).
	yieldShare float64
	// lastAttempt is the time one last renewal needs before expiry: its request (attemptTimeout) and
	// the retries' own slack.
	lastAttempt time.Duration
}

// refreshPolicy is the policy of refresh mode. Renewing at half the lifetime on average is what MSAL
// and Microsoft's guidance do (an Entra token lives 60 to 90 minutes, so this renews 15 to 67
// minutes ahead, leaving time for retries); azcore also refreshes at least 5 minutes before expiry and
// no more than every 30 seconds. The rules are in backoff.go.
var refreshPolicy = renewalPolicy{
	floor:       30 * time.Second,
	margin:      5 * time.Minute,
	jitter:      0.1,
	retryBase:   10 * time.Second,
	retryMax:    5 * time.Minute,
	sameFloor:   time.Second,
	spread:      0.5,
	yieldShare:  0.5,
	lastAttempt: time.Minute,
}

// scale returns d times f.
func scale(d time.Duration, f float64) time.Duration { return time.Duration(float64(d) * f) }

// clock is the loop's time: the system's in production, a simulated one in tests, where hours of
// token lifetimes pass in milliseconds.
type clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed, and a function that stops it.
	After(d time.Duration) (<-chan time.Time, func() bool)
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) After(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// keepFresh is refresh mode after the first token, tok, was published ([firstToken]: same checks,
// messages and exit statuses, a regular file at the path replaced): it renews the token as
// [refreshPolicy] says, with one attempt of src each time, which reads the credential again (the
// kubelet updates a mounted Secret and rotates a projected service account token in place), and
// replaces the file with each new token. A failed renewal is logged, with when the current token
// expires, and retried; the file keeps the current token. Between renewals it waits on one timer.
//
// It returns nil when ctx is done after the first token was published (SIGTERM, SIGINT), leaving the
// file in place for a main container that may still be finishing, but [renewWithin]'s error wrapping
// errStuck (exit status 1) when a renewal was stuck in a file system call then; and an error with exit
// status 10 once the current token has expired without a renewal. It never returns while that token is
// valid.
func keepFresh(ctx context.Context, cfg config, src source, log *slog.Logger, clk clock, tok issued) error {
	cong := congestion{on: tok.throttled}
	next := tok.received.Add(refreshPolicy.renewAt(tok.expiry.Sub(tok.received), rand.Float64(), cong.on))
	attrs := []any{"expires", timestamp(tok.expiry), "next_renewal", timestamp(next)}
	if cong.on {
		attrs = append(attrs, "throttled", true)
	}
	log.Info("keeping the access token fresh", attrs...)
	failures := 0
	var lastErr error
	var prevWait time.Duration
	refused, gaveWay := false, false // this cycle: a renewal refused with 429; not retried after one
	for {
		wake := next
		if tok.expiry.Before(wake) {
			wake = tok.expiry
		}
		if !sleep(ctx, clk, wake.Sub(clk.Now())) {
			return stopped(ctx, log, tok)
		}
		if now := clk.Now(); !now.Before(tok.expiry) {
			return expired(cfg, tok, next, lastErr, gaveWay)
		} else if now.Before(next) {
			continue
		}
		fresh, err := renewWithin(ctx, cfg, src, clk, tok.expiry)
		if ctx.Err() != nil {
			return stopped(ctx, log, tok)
		}
		if err != nil {
			failures++
			lastErr = err
			var serverWait time.Duration
			throttled := false
			if r, ok := errors.AsType[*retryable](err); ok {
				serverWait, throttled = r.retryAfter, r.throttled
			}
			refused = refused || throttled
			now := clk.Now()
			wait, retry := refreshPolicy.retryWait(prevWait, serverWait, tok.expiry.Sub(now), rand.Float64(), cong.on, throttled)
			if !retry {
				gaveWay, next = true, tok.expiry
				log.Warn("renewing access token failed; not retrying: the server is throttling (429) and was lately, so this sidecar gives way to pods without a token; the token file keeps the current token until it expires",
					"error", err.Error(), "failures", failures, "token_expires", timestamp(tok.expiry))
				continue
			}
			prevWait, next = wait, now.Add(wait)
			log.Warn("renewing access token failed; the token file keeps the current token", "error", err.Error(),
				"failures", failures, "retry_at", timestamp(next), "token_expires", timestamp(tok.expiry))
			continue
		}
		// Managed identity's endpoints cache tokens: a renewal may get the current token back, with
		// the same "exp". That is no failure; the next renewal comes at half of what is left, and
		// before expiry even when the floor would put it after ([renewalPolicy.renewSameAfter]).
		same := !fresh.expiry.After(tok.expiry)
		cong = cong.after(refused)
		tok, failures, lastErr, prevWait, refused = fresh, 0, nil, 0, false
		lifetime, r := tok.expiry.Sub(tok.received), rand.Float64()
		if same {
			next = tok.received.Add(refreshPolicy.renewSameAfter(lifetime, r))
		} else {
			next = tok.received.Add(refreshPolicy.renewAt(lifetime, r, cong.on))
		}
		attrs = []any{"expires", timestamp(tok.expiry), "next_renewal", timestamp(next)}
		if same {
			attrs = append(attrs, "same_token", true)
		}
		if cong.on {
			attrs = append(attrs, "throttled", true)
		}
		log.Info("renewed access token", attrs...)
	}
}

// renewWithin is [renew] within BEARER_TOKEN_TIMEOUT, which ends it whatever it waits on, as
// [untilDone] does: a credential read that hangs (a hung network or FUSE mount) fails the renewal, to be
// retried, and cannot keep the loop from noticing that the token expired. When ctx is done (SIGTERM,
// SIGINT) it returns ctx's cause at once, without waiting for the renewal: the file keeps the current
// token, and the abandoned renewal publishes nothing ([writeTokenFile] checks its context first).
func renewWithin(ctx context.Context, cfg config, src source, clk clock, current time.Time) (issued, error) {
	rctx, cancel := cfg.withTimeout(ctx)
	defer cancel()
	type result struct {
		tok issued
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := renew(rctx, cfg, src, clk, current)
		done <- result{tok, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return issued{}, context.Cause(ctx)
	case <-rctx.Done():
		select {
		case r = <-done:
		case <-time.After(stopGrace):
			r.err = fmt.Errorf("stopped: %w; %w", context.Cause(rctx), errStuck)
		}
	}
	if r.err != nil {
		cfg.metrics.renewalFailed(cfg.tokenFile)
	}
	return r.tok, r.err
}

// renew makes one renewal attempt: one attempt of src, which reads the credential again; it checks
// the token and replaces the token file with it, unless it expires sooner than current, the expiry of
// the token in the file ([keepCurrent]): that is a failed renewal, and the file keeps its token. Its
// errors read as the one-shot's do.
func renew(ctx context.Context, cfg config, src source, clk clock, current time.Time) (issued, error) {
	// A client per attempt, its connection closed after: nothing stays open between renewals.
	client := cfg.httpClient()
	defer client.CloseIdleConnections()
	resp, err := src.token(ctx, client, clk.Now())
	if err != nil {
		return issued{}, err
	}
	received := clk.Now()
	claims, err := checkToken(resp, cfg.audience, received)
	if err != nil {
		return issued{}, fmt.Errorf("checking the access token: %w", err)
	}
	if keepCurrent(current, claims.expiry) {
		return issued{}, fmt.Errorf("checking the access token: it expires at %s, sooner than the one in the token file (%s): not published", timestamp(claims.expiry), timestamp(current))
	}
	if err := writeTokenFile(ctx, cfg.tokenFile, cfg.fileMode, cfg.format.render(resp.AccessToken, claims.expiry, cfg.resource), true); err != nil {
		return issued{}, err
	}
	cfg.metrics.published(cfg.tokenFile, claims.expiry, resp.AccessToken, received, false)
	return issued{tokenClaims: claims, received: received}, nil
}

// sleep waits d on clk and reports whether it did, false when ctx was done first.
func sleep(ctx context.Context, clk clock, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	if d <= 0 {
		return true
	}
	c, stop := clk.After(d)
	defer stop()
	select {
	case <-ctx.Done():
		return false
	case <-c:
		return true
	}
}

// stopped logs why refresh mode stops at ctx's end and returns nil: exit status 0, the file left in
// place.
func stopped(ctx context.Context, log *slog.Logger, tok issued) error {
	log.Info("stopping; the token file stays in place", "cause", context.Cause(ctx).Error(), "expires", timestamp(tok.expiry))
	return nil
}

// expired returns the error of refresh mode, with exit status 10, when the token tok has expired
// without a renewal: the last renewal's failure (gaveWay: not retried, the server throttling); or, if
// none was tried, that the renewal due at next came too late, because the floor put it after expiry,
// or because the program did not run in time.
func expired(cfg config, tok issued, next time.Time, lastErr error, gaveWay bool) error {
	switch {
	case lastErr != nil && gaveWay:
		return &exitError{code: exitRequest, err: fmt.Errorf("the access token in %q expired at %s: its renewal was refused and not retried, giving way to pods without a token, as the server kept throttling (see README, Many pods): %w",
			cfg.tokenFile, timestamp(tok.expiry), lastErr)}
	case lastErr != nil:
		// Not withExit: lastErr may carry a status of its own (1 for an unreadable credential file, 2
		// for an invalid one), which would win, and this exit is 10 whatever the renewals' cause.
		return &exitError{code: exitRequest, err: fmt.Errorf("the access token in %q expired at %s and could not be renewed: %w",
			cfg.tokenFile, timestamp(tok.expiry), lastErr)}
	case !next.Before(tok.expiry):
		return withExit(exitRequest, fmt.Errorf("the access token in %q expired at %s, %s after it was received, before its renewal was due at %s (renewals are at least %s apart): check the node's clock (NTP) and the token lifetime",
			cfg.tokenFile, timestamp(tok.expiry), tok.expiry.Sub(tok.received).Round(time.Second), timestamp(next), refreshPolicy.floor))
	}
	return withExit(exitRequest, fmt.Errorf("the access token in %q expired at %s before it was renewed: the renewal due at %s did not run in time (was the process stopped, or the node overloaded?)",
		cfg.tokenFile, timestamp(tok.expiry), timestamp(next)))
}
