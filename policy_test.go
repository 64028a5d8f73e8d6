package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRenewAfter is the renewal rule as a table: half the lifetime ±10%, at the latest 5 minutes
// before expiry (jittered down), never sooner than 30 s.
func TestRenewAfter(t *testing.T) {
	t.Parallel()
	m, s := time.Minute, time.Second
	for _, tc := range []struct {
		name     string
		lifetime time.Duration
		r        float64
		want     time.Duration
	}{
		{"90 min Entra token, middle of the jitter", 90 * m, 0.5, 45 * m},
		{"90 min, earliest", 90 * m, 0, 40*m + 30*s},
		{"90 min, latest", 90 * m, 1, 49*m + 30*s},
		{"60 min, middle", 60 * m, 0.5, 30 * m},
		{"60 min, earliest", 60 * m, 0, 27 * m},
		{"60 min, latest", 60 * m, 1, 33 * m},
		{"75 min, a quarter up", 75 * m, 0.75, 39*m + 22*s + 500*time.Millisecond},
		// Short tokens: the 5-minute margin before expiry wins over half the lifetime.
		{"12 min, half is 5 min 24 s ahead of expiry at most", 12 * m, 1, 6*m + 36*s},
		{"10 min, middle: half is exactly 5 min before expiry", 10 * m, 0.5, 5 * m},
		{"10 min, latest: capped 5 min before expiry, jittered down", 10 * m, 1, 4*m + 30*s},
		{"8 min: 5 min before expiry", 8 * m, 0, 3 * m},
		{"8 min: 5 min before expiry, jittered down", 8 * m, 0.5, 2*m + 51*s},
		// The floor: a token too short for the margin, or skewed by a clock running ahead.
		{"5 min 20 s: margin leaves 20 s, the floor wins", 5*m + 20*s, 0.5, 30 * s},
		{"2 min token", 2 * m, 0.5, 30 * s},
		{"clock 59 min ahead: a 60 min token looks like 1 min", 1 * m, 0.5, 30 * s},
		{"10 s token: the floor is after expiry", 10 * s, 0.5, 30 * s},
		{"already expired when received", -time.Hour, 0.5, 30 * s},
		{"zero lifetime", 0, 0, 30 * s},
		// A clock running behind makes a token look longer-lived: still half of what we see.
		{"clock 30 min behind: a 60 min token looks like 90", 90 * m, 0.5, 45 * m},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := refreshPolicy.renewAfter(tc.lifetime, tc.r)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("renewAfter(%v, %v) (-want +got):\n%s", tc.lifetime, tc.r, diff)
			}
			if tc.lifetime > 10*m+10*s && got > tc.lifetime-refreshPolicy.margin {
				t.Errorf("renewAfter(%v, %v) = %v, later than 5 minutes before expiry", tc.lifetime, tc.r, got)
			}
		})
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

// TestRetryAfter is the backoff as a table: 10 s doubling to 5 min, up to 10% shorter at random, but
// never shorter than a Retry-After.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	m, s := time.Minute, time.Second
	for _, tc := range []struct {
		name       string
		failures   int
		serverWait time.Duration
		r          float64
		want       time.Duration
	}{
		{"first failure", 1, 0, 0, 10 * s},
		{"first failure, jittered", 1, 0, 0.5, 9*s + 500*time.Millisecond},
		{"first failure, most jitter", 1, 0, 0.999, 9*s + time.Millisecond},
		{"second", 2, 0, 0, 20 * s},
		{"third", 3, 0, 0, 40 * s},
		{"fifth", 5, 0, 0, 160 * s},
		{"sixth: capped", 6, 0, 0, 5 * m},
		{"sixth, jittered under the cap", 6, 0, 0.5, 4*m + 45*s},
		{"hundredth: capped, no overflow", 100, 0, 0, 5 * m},
		{"Retry-After longer than the backoff", 1, 60 * s, 0.5, 60 * s},
		{"Retry-After shorter than the backoff: never faster", 3, 1 * s, 0, 40 * s},
		{"Retry-After of an hour", 2, time.Hour, 0, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := refreshPolicy.retryAfter(tc.failures, tc.serverWait, tc.r)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("retryAfter(%d, %v, %v) (-want +got):\n%s", tc.failures, tc.serverWait, tc.r, diff)
			}
		})
	}
}
