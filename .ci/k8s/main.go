// Command k8s-check-harness is the Go half of .ci/k8s-check: it runs every shipped Kubernetes example
// (deploy/*.yaml, deploy/testdata/*.yaml) on a real single-node cluster built from source, against
// the Entra stand-in of internal/entratest, and asserts each outcome by the reason the cluster
// reports. The cases are Go tests behind the build tag e2e (e2e_test.go, cases_test.go); the
// cluster (cluster.go) and the test copies of the manifests (manifest.go, expect.go) are plain code
// with unit tests that need no cluster.
//
// Why Go and not a shell script like the other checks: ten cases, each with a negative twin, that
// read container statuses, compare timestamps, decode tokens, change the stand-in while pods run,
// and must tear a node down by PID whatever happens, are some two thousand lines of shell; as Go
// they are assertions as code, with cleanup in t.Cleanup.
//
// .ci/k8s-check builds and runs it; by hand, as root, with the binaries and registry it prepares:
//
//	go test -tags e2e -v .                     # the cases (environment: see e2e_test.go)
//	k8s-check-harness down DIR BIN             # tear down a cluster whose check was killed
package main

import (
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) != 4 || os.Args[1] != "down" {
		fmt.Fprintln(os.Stderr, "usage: k8s-check-harness down DIR BIN")
		os.Exit(2)
	}
	dir, err := filepath.Abs(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8s-check-harness:", err)
		os.Exit(1)
	}
	if _, err := os.Stat(filepath.Join(dir, "pids")); err != nil {
		return // never started
	}
	c := &cluster{dir: dir, bin: os.Args[3], out: os.Stdout}
	if err := c.down(); err != nil {
		fmt.Fprintln(os.Stderr, "k8s-check-harness: down:", err)
		os.Exit(1)
	}
}
