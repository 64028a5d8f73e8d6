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
// Retry-After as a floor plus up to twice itself (the share doubling from the fourth failure), cut to
// leave one last attempt before BEARER_TOKEN_TIMEOUT; no attempt when none fits.
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
		{"429 Retry-After 5, sixth failure", 6, 15 * s, 5 * s, 2 * m, 0.5, 45 * s, true},
		{"429 Retry-After 5, hundredth failure: no overflow, cut to the last attempt", 100, 15 * s, 5 * s, 2 * m, 0.5, 2*m - s, true},
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
			got := refreshPolicy.renewAt(tc.lifetime, tc.r)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("renewAt(%v, %v) (-want +got):\n%s", tc.lifetime, tc.r, diff)
			}
			if tc.lifetime > 10*m+10*s && got > min(tc.lifetime, maxLifetime)-refreshPolicy.margin {
				t.Errorf("renewAt(%v, %v) = %v, later than 5 minutes before expiry", tc.lifetime, tc.r, got)
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
		want               time.Duration
	}{
		{"30 min left, 503: yields 7.5 min and more", 0, 0, 30 * m, 0, 7*m + 30*s},
		{"30 min left, 503, middle", 0, 0, 30 * m, 0.5, 11*m + 15*s},
		{"30 min left, most: just under 15 min", 0, 0, 30 * m, 0.999, 14*m + 59*s + 550*time.Millisecond},
		{"4 min left: a quarter of it", 0, 0, 4 * m, 0, m},
		{"90 s left: one last attempt at 30 s", 0, 0, 90 * s, 0.5, 30 * s},
		{"40 s left: past the last attempt, the backoff", 0, 0, 40 * s, 0, 10 * s},
		{"Retry-After 60 with 30 min left: the share is longer", 0, m, 30 * m, 0, 7*m + 30*s},
		{"Retry-After 20 min with 30 min left: spread, then cut", 0, 20 * m, 30 * m, 0.5, 29 * m},
		{"Retry-After of a billion seconds: one last attempt still fits", 0, 1e9 * s, 30 * m, 0.5, 29 * m},
		{"Retry-After of 2 h (an HTTP date) with 10 min left", 0, 2 * h, 10 * m, 0, 9 * m},
		{"a long backoff after 5 min waits: capped at 5 min", 5 * m, 0, 6 * m, 0.9, 5 * m},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := refreshPolicy.retryWait(tc.prev, tc.ra, tc.validity, tc.r)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("retryWait(%v, %v, %v, %v) (-want +got):\n%s", tc.prev, tc.ra, tc.validity, tc.r, diff)
			}
		})
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
