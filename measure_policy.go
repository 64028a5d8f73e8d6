//go:build measure

package main

import "time"

// Built only with -tags measure, by the sidecar measurement (BenchmarkSidecarRenewals, run by
// .ci/measure-refresh), which must watch the real program renew 100 times in minutes, not in days:
// no 5-minute margin and a floor of 250 ms, so that the stand-in's 3-second tokens are renewed at
// half their lifetime. Release builds (.ko.yaml, .goreleaser.yaml, the Dockerfile) never set it.
func init() {
	refreshPolicy.margin = 0
	refreshPolicy.floor = 250 * time.Millisecond
}
