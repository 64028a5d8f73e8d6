package main

import (
	"time"
)

// The waits of a fleet. Hundreds of sidecars started together (a rollout, a node reboot) ask one tenant
// (or one node's IMDS) at once, and a throttling Entra answers most of them 429 with Retry-After. Every
// wait below is therefore spread at random, so that refused requests do not come back together and are
// refused together again (the AWS Architecture Blog's "Exponential Backoff And Jitter"; gRPC's
// connection backoff), and a pod whose token is still valid waits longer than one that has none (the
// budget by urgency of Envoy's retry budgets and the SRE book's client-side throttling). Each is a pure
// function of durations and a random number r in [0, 1), tested as a table (backoff_test.go), and the
// whole is simulated as a fleet in TestFleetPolicy and measured with the built program by
// .ci/measure-fleet.

// decorrelated is decorrelated jitter (AWS): each wait is uniform between base and three times the previous
// one, at most max. It spreads a crowd's retries as full jitter does, and grows without a failure
// count: a wait stretched by a server's Retry-After stretches the next ones too.
type decorrelated struct {
	base, max time.Duration
}

// next returns the wait after prev (zero before the first failure): uniform in [base, 3×max(prev,
// base)), at most max.
func (b decorrelated) next(prev time.Duration, r float64) time.Duration {
	hi := 3 * max(prev, b.base)
	return min(b.base+scale(hi-b.base, r), b.max)
}

// serverShare stretches a server's Retry-After by up to this share of itself, at random: a wait of
// Retry-After is a floor, not an appointment. Twice (a wait of 5 s becomes 5 to 15 s) spreads a
// rollout's refused requests over enough seconds that most are admitted at their second attempt: with
// 500 pods and a tenant that admits 20 requests a second, the 480 refused at once come back over 10 s
// instead of together 5 s later (TestFleetPolicy: first token p95 28 s, 1.3 429s per pod; three
// times gave 1.15 429s but a p95 of 35 s).
const serverShare = 2.0

// serverWait returns the wait a Retry-After of ra asks for, spread: ra plus a random share of up to
// serverShare times ra; zero for none.
func serverWait(ra time.Duration, r float64) time.Duration {
	return ra + scale(ra, serverShare*r)
}

// firstTokenBackoff spaces the attempts at the first token when the server sends no Retry-After (a
// network error, a 503): from 1 to 3 s after the first failure, growing to at most 30 s. Tests shorten
// it (TestMain).
var firstTokenBackoff = firstTokenDefault

// firstTokenDefault is firstTokenBackoff as the program has it.
var firstTokenDefault = decorrelated{base: time.Second, max: 30 * time.Second}

// lastAttemptRoom is the time one more attempt at the first token needs before the deadline: less
// than this left, and the run gives up instead of starting a request the deadline would cut.
const lastAttemptRoom = time.Second

// firstTokenWait returns how long to wait after the failures-th failed attempt in a row at the first
// token (1, 2, …), which has no token to fall back on: prev is the wait before that attempt (zero for
// the first), ra the server's Retry-After (zero for none), left the time until BEARER_TOKEN_TIMEOUT,
// r random in [0, 1).
//
// With a Retry-After the wait is [serverWait] for the first three failures (5 to 15 s for ra 5 s), so
// that a rollout's crowd, refused at once, comes back over enough seconds to be admitted (with 500
// pods and a tenant admitting 20 a second, the last within 45 s); after the fourth, ra plus up to four
// times ra (5 to 25 s); from the fifth on, a random point in the later half of the time left, at
// least ra: a pod refused five times is in a crowd larger than the tenant admits, and each more
// attempt only adds to the refusals (issue 16: with 500 pods at 5 a second, doubling waits cost 6
// requests per token issued), so it makes one or two more before BEARER_TOKEN_TIMEOUT and leaves the
// next to the kubelet's restart. Without a Retry-After, it is the decorrelated backoff after prev.
// Either is cut so that one last attempt still fits before the deadline. ok is false when none fits
// any more: less than lastAttemptRoom left, or a server asking to wait past the deadline.
func firstTokenWait(failures int, prev, ra, left time.Duration, r float64) (wait time.Duration, ok bool) {
	return firstTokenBackoff.firstTokenWait(failures, prev, ra, left, r)
}

// throttledFailures is the failure count after which [firstTokenWait] stops retrying within seconds: a
// process that starts from its own token file, expired or about to (its renewals were refused: the
// kubelet restarted it), starts its count there, having no crowd of its own to wait out; and a first
// token that took as many refusals (429) starts refresh mode congested ([congestion]).
const throttledFailures = 4

// firstTokenWait is [firstTokenWait] with b as the backoff without a Retry-After.
func (b decorrelated) firstTokenWait(failures int, prev, ra, left time.Duration, r float64) (wait time.Duration, ok bool) {
	last := left - lastAttemptRoom
	if last <= 0 || ra > last {
		return 0, false
	}
	switch {
	case ra == 0:
		wait = b.next(prev, r)
	case failures < throttledFailures:
		wait = serverWait(ra, r)
	case failures == throttledFailures:
		wait = ra + scale(ra, 2*serverShare*r)
	default:
		wait = max(ra, scale(last, (1+r)/2))
	}
	return min(wait, last), true
}

// retryWait returns how long a renewal that failed waits before the next attempt, given how long the
// current token stays valid (validity, from now). It is the longest of:
//
//   - the decorrelated backoff from p.retryBase to p.retryMax after prev (the previous wait; zero after
//     the first failure);
//   - the server's Retry-After ra, spread by [serverWait];
//   - a share of the validity left, uniform in [p.yieldShare/2, p.yieldShare): a pod whose token has
//     half an hour left tries again in 7.5 to 15 minutes (refresh mode's share of 0.5), and leaves the
//     tenant to pods that have none; as expiry nears, it tries more often: about five attempts from
//     half an hour left to the last one. A share of 1 (one or two attempts, then the last) cut the
//     refused requests of an overloaded tenant by only a tenth in TestFleetPolicy, and left a token
//     one blip away from expiry.
//
// but at most until one last attempt still fits before expiry (p.lastAttempt ahead of it), so that no
// Retry-After, however long (a billion seconds, an HTTP date hours ahead), lets the token expire
// without that attempt. Once that point has passed, the wait is what the rules above say, and the
// token expires first when it is longer.
//
// When congested (see [congestion]) and the server refused with 429 (throttled), retry is false: the
// pod gives way, and its token runs out (then refresh mode exits with status 10, and the kubelet restarts it). A
// tenant that refuses renewal after renewal admits fewer tokens than the fleet's pods need; every
// retry of a pod that holds one is a request refused or a token taken from a pod that has none (issue
// 16, 500 pods at 5 a second for an hour in TestFleetPolicy: 2.6 requests per token issued with
// retries, 1.7 without).
func (p renewalPolicy) retryWait(prev, ra, validity time.Duration, r float64, congested, throttled bool) (wait time.Duration, retry bool) {
	if congested && throttled {
		return 0, false
	}
	d := decorrelated{p.retryBase, p.retryMax}.next(prev, r)
	d = max(d, serverWait(ra, r), scale(validity, p.yieldShare*(1+r)/2))
	if last := validity - p.lastAttempt; last > 0 {
		d = min(d, last)
	}
	return d, true
}

// renewAt returns how long after receiving a token valid for lifetime (its "exp" less the time it
// was received, by this machine's clock: not from "iat", which Entra backdates by 5 minutes) to renew
// it: at a uniformly random point in the middle p.spread of the lifetime ([25%, 75%] for a spread of
// 0.5), a lifetime longer than maxLifetime taken as maxLifetime; but at the latest p.margin before expiry, varied down by up to p.jitter; and never
// sooner than p.floor. The wide spread dissolves a rollout's wave within one lifetime: with ±10% the
// renewals of pods started together stayed in step for many lifetimes (issue 16). Renewals average
// half the lifetime, two per lifetime, as MSAL's and azcore's do.
//
// When congested (see [congestion]), the renewal is late instead: uniformly in [75%, 95%] of the time
// to the latest renewal (p.margin, or p.lastAttempt, before expiry), so that a tenant that admits too
// few tokens for the fleet serves more pods with them: a token renewed at half its lifetime holds
// half of it, unused, from a pod that has none.
func (p renewalPolicy) renewAt(lifetime time.Duration, r float64, congested bool) time.Duration {
	lifetime = min(lifetime, maxLifetime)
	if congested {
		return max(scale(lifetime-max(p.margin, p.lastAttempt), 0.75+0.2*r), p.floor)
	}
	d := scale(lifetime, 0.5+p.spread*(r-0.5))
	if latest := lifetime - p.margin; d > latest {
		d = scale(latest, 1-p.jitter*r)
	}
	return max(d, p.floor)
}

// renewSameAfter is [renewalPolicy.renewAt] for a token that a renewal got back unchanged, valid for
// lifetime: managed identity's endpoints cache tokens, some until their last seconds, so floor may put
// the next renewal at or past expiry, with nothing new to show for it. Then it is half the lifetime,
// but at least sameFloor: the endpoint is asked again, a few times at most (30 s halved down to 1 s),
// before the token expires.
func (p renewalPolicy) renewSameAfter(lifetime time.Duration, r float64) time.Duration {
	if d := p.renewAt(lifetime, r, false); d < lifetime {
		return d
	}
	return max(lifetime/2, p.sameFloor)
}

// maxLifetime is the longest lifetime a token is taken to have when its renewal is scheduled: Entra's
// longest is a managed identity's 24 hours
// (https://learn.microsoft.com/en-us/entra/identity/managed-identities-azure-resources/managed-identities-faq#how-long-do-managed-identity-tokens-live).
// A token that claims a century is renewed as if it lived a day.
const maxLifetime = 24 * time.Hour

// maxClockSkew is how far ahead of this machine's clock a token's "nbf" may lie: Entra backdates "nbf"
// by 5 minutes, so a later one comes from a clock far ahead, or is not Entra's; such a token is
// refused, not written. Kubernetes nodes keep NTP time within seconds.
const maxClockSkew = 5 * time.Minute

// keepCurrent reports whether a renewal's token, expiring at fresh, should be dropped and the token
// file keep the current one, expiring at current: a token that expires sooner than the one in the file
// is never published (a misbehaving server or a policy change would otherwise shorten the file's
// validity, and the renewal scheduled from it could come after it expired).
func keepCurrent(current, fresh time.Time) bool { return fresh.Before(current) }

// congestion is what a sidecar remembers of a tenant that throttles it (429 Too Many Requests, not an
// outage's 503): on after a renewal cycle in which a renewal was refused with 429, after a first token
// that took [throttledFailures] refusals or more (the crowd was larger than the tenant admits), or at a
// start from its own token file, expired or about to (the last process's renewals were refused); off
// again after congestionClears renewal cycles in a row without a 429. While on, the pod renews late
// and does not retry a renewal refused with 429 ([renewalPolicy.renewAt], [renewalPolicy.retryWait]):
// the tenant's tokens go round the fleet, each used to its end, instead of to the pods that retry
// hardest. A first token that took only the quick retries does not turn it on: a rollout that the
// tenant admits within seconds leaves renewals a moment's refusal later (in TestFleetPolicy's 20/s
// case, that cost pods their token). Memory, not a count of failures: congestion outlasts one renewal
// cycle, as TCP keeps its slow-start threshold across losses.
type congestion struct {
	on    bool
	clean int // renewals in a row that succeeded at their first attempt while on
}

// congestionClears is how many renewal cycles without a 429 turn congestion off: for Entra's tokens,
// hours, long enough for a tenant's overload to have passed and short enough that a pod throttled once
// does not renew late for ever (a managed identity endpoint that hands back its cached token is asked
// minutes apart: there, minutes). Fewer let pods go back to early renewals and retries while an
// overload went on (TestFleetPolicy's 5/s case: 1.91 requests per token at 30 minutes with 3, 1.79
// when it never turns off).
const congestionClears = 3

// after returns the state after a renewal succeeded; refused tells whether an attempt at it was
// refused with 429 first.
func (c congestion) after(refused bool) congestion {
	switch {
	case refused:
		return congestion{on: true}
	case !c.on:
		return c
	case c.clean+1 >= congestionClears:
		return congestion{}
	}
	return congestion{on: true, clean: c.clean + 1}
}
