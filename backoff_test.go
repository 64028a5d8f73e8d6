package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestDecorrelated is the decorrelated jitter as a table: uniform in [base, 3×prev), at most max.
func TestDecorrelated(t *testing.T) {
	t.Parallel()
	s := time.Second
	b := decorrelated{base: s, max: 30 * s}
	for _, tc := range []struct {
		name string
		prev time.Duration
		r    float64
		want time.Duration
	}{
		{"first failure, least", 0, 0, s},
		{"first failure, middle", 0, 0.5, 2 * s},
		{"first failure, most", 0, 0.999, 2*s + 998*time.Millisecond},
		{"after 2 s, most", 2 * s, 0.999, 5*s + 995*time.Millisecond},
		{"after 2 s, least: back to base", 2 * s, 0, s},
		{"after 20 s: capped", 20 * s, 0.9, 30 * s},
		{"after a long Retry-After: grows from it, capped", time.Hour, 0.1, 30 * s},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tc.want, b.next(tc.prev, tc.r)); diff != "" {
				t.Errorf("next(%v, %v) (-want +got):\n%s", tc.prev, tc.r, diff)
			}
		})
	}
}

// TestFirstTokenWait is the first token's retry rule as a table: the decorrelated backoff, or a
// Retry-After as a floor plus up to twice itself (four times at the fourth failure; from the fifth, the
// later half of the time left), cut to leave one last attempt before BEARER_TOKEN_TIMEOUT; no attempt
// when none fits.
func TestFirstTokenWait(t *testing.T) {
	t.Parallel()
	s, m := time.Second, time.Minute
	for _, tc := range []struct {
		name     string
		failures int
		prev, ra time.Duration
		left     time.Duration
		r        float64
		want     time.Duration
		wantOK   bool
	}{
		{"503, first failure", 1, 0, 0, 2 * m, 0.5, 2 * s, true},
		{"503, after a 2 s wait", 2, 2 * s, 0, 2 * m, 0.5, 3500 * time.Millisecond, true},
		{"503, many failures: at most 30 s", 9, 30 * s, 0, 2 * m, 0.99, 30 * s, true},
		{"429 Retry-After 5, least", 1, 0, 5 * s, 2 * m, 0, 5 * s, true},
		{"429 Retry-After 5, middle: a floor, not an appointment", 1, 0, 5 * s, 2 * m, 0.5, 10 * s, true},
		{"429 Retry-After 5, third failure, most", 3, 15 * s, 5 * s, 2 * m, 0.999, 14*s + 990*time.Millisecond, true},
		{"429 Retry-After 5, fourth failure: the share doubles", 4, 15 * s, 5 * s, 2 * m, 0.5, 15 * s, true},
		{"429 Retry-After 5, fourth failure, most", 4, 15 * s, 5 * s, 2 * m, 0.999, 24*s + 980*time.Millisecond, true},
		{"429 Retry-After 5, fifth failure, 81 s left: the later half of the last 80", 5, 15 * s, 5 * s, 81 * s, 0, 40 * s, true},
		{"429 Retry-After 5, fifth failure, 81 s left, most", 5, 15 * s, 5 * s, 81 * s, 0.999, 79*s + 960*time.Millisecond, true},
		{"429 Retry-After 5, sixth failure, 7 s left: at least Retry-After", 6, 40 * s, 5 * s, 7 * s, 0, 5 * s, true},
		{"429 Retry-After 5, hundredth failure, middle", 100, 15 * s, 5 * s, 2 * m, 0.5, 89*s + 250*time.Millisecond, true},
		{"a lost token's first failure counts as the fifth", throttledFailures + 1, 0, 5 * s, 2 * m, 0, 59*s + 500*time.Millisecond, true},
		{"a wait past the deadline: cut to one last attempt", 1, 0, 5 * s, 11 * s, 0.9, 10 * s, true},
		{"Retry-After past the deadline: give up", 1, 0, time.Hour, 2 * m, 0.5, 0, false},
		{"Retry-After of a billion seconds", 1, 0, 1e9 * s, 2 * m, 0.5, 0, false},
		{"less than a second left: give up", 2, s, 0, 900 * time.Millisecond, 0.5, 0, false},
		{"deadline passed", 2, s, 0, -s, 0.5, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := firstTokenDefault.firstTokenWait(tc.failures, tc.prev, tc.ra, tc.left, tc.r)
			if diff := cmp.Diff([]any{tc.want, tc.wantOK}, []any{got, ok}); diff != "" {
				t.Errorf("firstTokenWait(%d, %v, %v, %v, %v) (-want +got):\n%s", tc.failures, tc.prev, tc.ra, tc.left, tc.r, diff)
			}
		})
	}
}

// TestRenewAt is the renewal rule as a table: uniformly in [25%, 75%] of the lifetime, a lifetime of
// more than 24 hours taken as 24 hours; at the latest 5 minutes before expiry (jittered down); never
// sooner than 30 s.
func TestRenewAt(t *testing.T) {
	t.Parallel()
	m, s, h := time.Minute, time.Second, time.Hour
	for _, tc := range []struct {
		name     string
		lifetime time.Duration
		r        float64
		want     time.Duration
	}{
		{"60 min, earliest", 60 * m, 0, 15 * m},
		{"60 min, middle", 60 * m, 0.5, 30 * m},
		{"60 min, latest", 60 * m, 0.999, 44*m + 58*s + 200*time.Millisecond},
		{"90 min, middle", 90 * m, 0.5, 45 * m},
		{"90 min, latest", 90 * m, 0.999, 67*m + 27*s + 300*time.Millisecond},
		{"24 h managed identity token, middle", 24 * h, 0.5, 12 * h},
		{"100-year token: renewed as a day-long one", 100 * 365 * 24 * h, 0.5, 12 * h},
		{"100-year token, latest: within 18 h", 100 * 365 * 24 * h, 0.999, 17*h + 59*m + 16*s + 800*time.Millisecond},
		{"12 min, latest: capped 5 min before expiry, jittered down", 12 * m, 0.9, 6*m + 22*s + 200*time.Millisecond},
		{"10 min, middle: 5 min before expiry", 10 * m, 0.5, 5 * m},
		{"5 min 20 s: the floor", 5*m + 20*s, 0.5, 30 * s},
		{"clock 59 min ahead: a 60 min token looks like 1 min", 1 * m, 0.5, 30 * s},
		{"already expired when received", -h, 0.5, 30 * s},
		{"zero lifetime", 0, 0, 30 * s},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := refreshPolicy.renewAt(tc.lifetime, tc.r, false)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("renewAt(%v, %v) (-want +got):\n%s", tc.lifetime, tc.r, diff)
			}
			if tc.lifetime > 10*m+10*s && got > min(tc.lifetime, maxLifetime)-refreshPolicy.margin {
				t.Errorf("renewAt(%v, %v) = %v, later than 5 minutes before expiry", tc.lifetime, tc.r, got)
			}
		})
	}
}

// TestRenewAtCongested: a congested pod renews late, in [75%, 95%] of the time to 5 minutes before
// expiry (the measure build's: 2 s), never sooner than the floor.
func TestRenewAtCongested(t *testing.T) {
	t.Parallel()
	m, s := time.Minute, time.Second
	for _, tc := range []struct {
		name     string
		policy   renewalPolicy
		lifetime time.Duration
		r        float64
		want     time.Duration
	}{
		{"60 min, earliest", refreshPolicy, 60 * m, 0, 41*m + 15*s},
		{"60 min, latest", refreshPolicy, 60 * m, 0.999, 52*m + 14*s + 340*time.Millisecond},
		{"24 h managed identity token, earliest", refreshPolicy, 24 * time.Hour, 0, 17*time.Hour + 56*m + 15*s},
		{"6 min: the floor", refreshPolicy, 6 * m, 0, 45 * s},
		{"5 min 20 s: the floor", refreshPolicy, 5*m + 20*s, 0.5, 30 * s},
		{"measure build, 60 s, earliest", measurePolicy(), 60 * s, 0, 43*s + 500*time.Millisecond},
		{"measure build, 60 s, latest", measurePolicy(), 60 * s, 0.999, 55*s + 88*time.Millisecond + 400*time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := tc.policy.renewAt(tc.lifetime, tc.r, true)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("renewAt(%v, %v, true) (-want +got):\n%s", tc.lifetime, tc.r, diff)
			}
		})
	}
}

// TestRetryWait is the refused renewal's rule as a table: the longest of the decorrelated backoff
// (10 s to 5 min), the spread Retry-After, and a quarter to a half of the validity left; but no later
// than one minute before expiry, whatever the server asks, so that one last attempt fits; past that
// point, whatever the rules say (the token then expires).
func TestRetryWait(t *testing.T) {
	t.Parallel()
	m, s, h := time.Minute, time.Second, time.Hour
	for _, tc := range []struct {
		name               string
		prev, ra, validity time.Duration
		r                  float64
		congested          bool // and a 429 (throttled) when there is a Retry-After
		want               time.Duration
		wantRetry          bool
	}{
		{"30 min left, 503: yields 7.5 min and more", 0, 0, 30 * m, 0, false, 7*m + 30*s, true},
		{"30 min left, 503, middle", 0, 0, 30 * m, 0.5, false, 11*m + 15*s, true},
		{"30 min left, most: just under 15 min", 0, 0, 30 * m, 0.999, false, 14*m + 59*s + 550*time.Millisecond, true},
		{"4 min left: a quarter of it", 0, 0, 4 * m, 0, false, m, true},
		{"90 s left: one last attempt at 30 s", 0, 0, 90 * s, 0.5, false, 30 * s, true},
		{"40 s left: past the last attempt, the backoff", 0, 0, 40 * s, 0, false, 10 * s, true},
		{"Retry-After 60 with 30 min left: the share is longer", 0, m, 30 * m, 0, false, 7*m + 30*s, true},
		{"Retry-After 20 min with 30 min left: spread, then cut", 0, 20 * m, 30 * m, 0.5, false, 29 * m, true},
		{"Retry-After of a billion seconds: one last attempt still fits", 0, 1e9 * s, 30 * m, 0.5, false, 29 * m, true},
		{"Retry-After of 2 h (an HTTP date) with 10 min left", 0, 2 * h, 10 * m, 0, false, 9 * m, true},
		{"a long backoff after 5 min waits: capped at 5 min", 5 * m, 0, 6 * m, 0.9, false, 5 * m, true},
		{"congested, 429 Retry-After 5: no retry, the token runs out", 0, 5 * s, 30 * m, 0.5, true, 0, false},
		{"congested, Retry-After of a billion seconds: no retry", 0, 1e9 * s, 30 * m, 0.5, true, 0, false},
		{"congested, 503 without Retry-After: retried as ever", 0, 0, 30 * m, 0, true, 7*m + 30*s, true},
		{"congested, network error, 90 s left: the last attempt", 0, 0, 90 * s, 0.5, true, 30 * s, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, retry := refreshPolicy.retryWait(tc.prev, tc.ra, tc.validity, tc.r, tc.congested, tc.ra > 0)
			if diff := cmp.Diff([]any{tc.want, tc.wantRetry}, []any{got, retry}); diff != "" {
				t.Errorf("retryWait(%v, %v, %v, %v, %v) (-want +got):\n%s", tc.prev, tc.ra, tc.validity, tc.r, tc.congested, diff)
			}
		})
	}
	// An outage's 503 with a Retry-After is no throttling: a congested pod retries it.
	if got, retry := refreshPolicy.retryWait(0, m, 30*m, 0, true, false); !retry || got != 7*m+30*s {
		t.Errorf("retryWait after a 503 with Retry-After 60, congested = %v, %v; want 7m30s, true", got, retry)
	}
}

// TestKeepCurrent: a renewal's token expiring sooner than the file's is never published.
func TestKeepCurrent(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, tc := range []struct {
		name           string
		current, fresh time.Time
		want           bool
	}{
		{"later: publish", now.Add(30 * time.Minute), now.Add(time.Hour), false},
		{"same expiry: publish", now.Add(time.Hour), now.Add(time.Hour), false},
		{"sooner: keep the current", now.Add(30 * time.Minute), now.Add(10 * time.Minute), true},
	} {
		if got := keepCurrent(tc.current, tc.fresh); got != tc.want {
			t.Errorf("%s: keepCurrent = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRenewSameAfter is the renewal rule for a token a renewal got back unchanged, as a table: the
// usual rule while it renews before expiry; else half of what is left, at least a second.
func TestRenewSameAfter(t *testing.T) {
	t.Parallel()
	m, s := time.Minute, time.Second
	for _, tc := range []struct {
		lifetime, want time.Duration
	}{
		{24 * time.Hour, 12 * time.Hour},
		{4 * m, 30 * s},
		{31 * s, 30 * s},
		{30 * s, 15 * s},
		{25 * s, 12*s + 500*time.Millisecond},
		{2 * s, s},
		{1500 * time.Millisecond, s},
		{0, s},
	} {
		if got := refreshPolicy.renewSameAfter(tc.lifetime, 0.5); got != tc.want {
			t.Errorf("renewSameAfter(%v) = %v, want %v", tc.lifetime, got, tc.want)
		}
	}
}

// TestCongestion is the memory of a throttling tenant as a table: on after a cycle with a refusal
// (429), off after three cycles without one in a row, a refusal starting the count again.
func TestCongestion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		refused []bool // the renewals, in order: refused before they succeeded?
		want    congestion
	}{
		{"never refused", []bool{false, false}, congestion{}},
		{"refused once", []bool{true}, congestion{on: true}},
		{"then one clean", []bool{true, false}, congestion{on: true, clean: 1}},
		{"then two clean", []bool{true, false, false}, congestion{on: true, clean: 2}},
		{"then three clean: off", []bool{true, false, false, false}, congestion{}},
		{"refused again after two clean: the count starts over", []bool{true, false, false, true, false}, congestion{on: true, clean: 1}},
		{"off, then refused", []bool{true, false, false, false, true}, congestion{on: true}},
	} {
		var c congestion
		for _, r := range tc.refused {
			c = c.after(r)
		}
		if diff := cmp.Diff(tc.want, c, cmp.AllowUnexported(congestion{})); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}
