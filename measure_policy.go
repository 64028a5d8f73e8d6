//go:build measure

package main

import "time"

// Built only with -tags measure, by the sidecar measurements (BenchmarkSidecarRenewals, run by
// .ci/measure-refresh; the fleet, .ci/measure-fleet), which must watch the real program renew many
// times in minutes, not in days: a 60-second token stands for an hour-long one. No 5-minute margin, a
// floor of 250 ms (so that the stand-in's 3-second tokens are renewed at 25% to 75% of their
// lifetime), and the retries' times scaled down as the lifetime is, about 60 times: backoff from 1 to
// 5 s, the last attempt 2 s before expiry. Release builds (.ko.yaml, .goreleaser.yaml, the Dockerfile)
// never set it. TestFleetPolicy's measurePolicy is this policy.
func init() {
	refreshPolicy.margin = 0
	refreshPolicy.floor = 250 * time.Millisecond
	refreshPolicy.retryBase = time.Second
	refreshPolicy.retryMax = 5 * time.Second
	refreshPolicy.lastAttempt = 2 * time.Second
}
