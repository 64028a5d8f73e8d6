package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// The measurements issue 7 asks for, of the built program: figures only, nothing asserted. Run them
// with .ci/measure-refresh, or:
//
//	go test -run '^$' -bench 'Sidecar|CheckVersusVersion' -benchtime 1x -measure.idle 10m .

var (
	measureIdle  = flag.Duration("measure.idle", time.Minute, "how long BenchmarkSidecarIdle watches the idle sidecar")
	measurePairs = flag.Int("measure.pairs", 300, "pairs of runs BenchmarkCheckVersusVersion times")
)

// buildTagged builds the program with the release flags and tags (empty: none) into dir.
func buildTagged(b *testing.B, dir, tags string) string {
	b.Helper()
	bin := filepath.Join(dir, "azure-rest-api-token")
	args := []string{"build", "-trimpath", "-tags", strings.Join([]string{"nethttpomithttp2", tags}, ","), "-ldflags", "-s -w", "-o", bin, "."}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// sidecar is the built program running in refresh mode against a stand-in.
type sidecar struct {
	srv       *entratest.Server
	cmd       *exec.Cmd
	exited    chan struct{} // closed when cmd has exited; then err is its error
	err       error
	out       *logWriter
	tokenFile string
}

// startSidecar starts bin in refresh mode against a new stand-in whose tokens live lifetime, and
// waits for its first token.
func startSidecar(b *testing.B, bin string, lifetime time.Duration) *sidecar {
	b.Helper()
	srv, err := entratest.NewServer()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Close)
	srv.TokenLifetime = lifetime
	// On tmpfs, as an emptyDir with medium: Memory: fsync on a disk shared with other builds can stall
	// for seconds, longer than the measurement's short tokens live.
	dir, err := os.MkdirTemp("/dev/shm", "azure-rest-api-token-measure-")
	if err != nil {
		dir = b.TempDir()
	} else {
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	sp, _ := json.Marshal(map[string]string{"appId": entratest.DefaultClientID, "displayName": entratest.DefaultDisplayName,
		"password": entratest.DefaultSecret, "tenant": entratest.DefaultTenantID})
	spFile := filepath.Join(dir, "sp.json")
	if err := os.WriteFile(spFile, sp, 0o600); err != nil {
		b.Fatal(err)
	}
	s := &sidecar{srv: srv, out: &logWriter{b: &bytes.Buffer{}}, tokenFile: filepath.Join(dir, "token"), exited: make(chan struct{})}
	s.cmd = exec.Command(bin)
	s.cmd.Env = []string{"SSL_CERT_FILE=" + os.Getenv("SSL_CERT_FILE"), "BEARER_TOKEN_REFRESH=true",
		"ENTRA_SERVICE_PRINCIPAL=" + spFile, "AZURE_RESOURCE=" + entratest.PrometheusResource,
		"BEARER_TOKEN_FILE=" + s.tokenFile, "AZURE_AUTHORITY_HOST=" + srv.URL}
	s.cmd.Stdout = s.out
	if err := s.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.exited) }()
	b.Cleanup(func() { _ = s.cmd.Process.Kill(); <-s.exited })
	s.waitRequests(b, 1)
	for !strings.Contains(s.log(), "keeping the access token fresh") {
		time.Sleep(5 * time.Millisecond)
	}
	return s
}

func (s *sidecar) log() string {
	s.out.mu.Lock()
	defer s.out.mu.Unlock()
	return s.out.b.String()
}

// waitRequests waits until the stand-in has had n requests.
func (s *sidecar) waitRequests(b *testing.B, n int) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for len(s.srv.Requests()) < n {
		select {
		case <-s.exited:
			b.Fatalf("the program exited (%v) after %d of %d requests; log:\n%s", s.err, len(s.srv.Requests()), n, s.log())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d requests after 5 minutes; log:\n%s", len(s.srv.Requests()), n, s.log())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns how long the program took to exit, and its error.
func (s *sidecar) stop() (time.Duration, error) {
	start := time.Now()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	<-s.exited
	return time.Since(start), s.err
}

// rss returns the process's resident set size and its peak (VmRSS, VmHWM), in KiB.
func rss(b *testing.B, pid int) (now, peak int) {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			now = n
		case "VmHWM":
			peak = n
		}
	}
	return now, peak
}

// cpu returns the CPU time the process's threads have used and the number of times they were
// scheduled, summed over /proc/PID/task/*/schedstat (nanoseconds on the CPU, time waiting, timeslices).
func cpu(b *testing.B, pid int) (used time.Duration, slices int) {
	b.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		b.Fatalf("no schedstat for %d: %v", pid, err)
	}
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that ended
		}
		f := strings.Fields(string(data))
		ns, _ := strconv.ParseInt(f[0], 10, 64)
		n, _ := strconv.Atoi(f[2])
		used += time.Duration(ns)
		slices += n
	}
	return used, slices
}

// BenchmarkSidecarIdle starts the release build in refresh mode with hour-long tokens and watches it
// wait for its first renewal, half an hour away, for -measure.idle: its RSS, the CPU time it uses and
// how often it is scheduled, and the requests it makes (none: one timer, no polling). Then SIGTERM.
func BenchmarkSidecarIdle(b *testing.B) {
	bin := buildTagged(b, b.TempDir(), "")
	s := startSidecar(b, bin, time.Hour)
	pid := s.cmd.Process.Pid
	time.Sleep(2 * time.Second) // past the start-up's own work
	rss0, _ := rss(b, pid)
	cpu0, slices0 := cpu(b, pid)
	req0 := len(s.srv.Requests())
	time.Sleep(*measureIdle)
	rss1, peak := rss(b, pid)
	cpu1, slices1 := cpu(b, pid)
	req1 := len(s.srv.Requests())
	took, err := s.stop()
	if err != nil {
		b.Errorf("exit after SIGTERM: %v", err)
	}
	minutes := measureIdle.Minutes()
	b.ReportMetric(float64(rss0), "KiB-RSS-idle-start")
	b.ReportMetric(float64(rss1), "KiB-RSS-idle-end")
	b.ReportMetric(float64(peak), "KiB-RSS-peak")
	b.ReportMetric(float64(cpu1-cpu0)/float64(time.Millisecond)/minutes, "ms-CPU/idle-min")
	b.ReportMetric(float64(slices1-slices0)/minutes, "timeslices/idle-min")
	b.ReportMetric(float64(req1-req0), "requests-while-idle")
	b.ReportMetric(float64(took)/float64(time.Millisecond), "ms-SIGTERM-to-exit")
	b.Logf("idle %v: RSS %d -> %d KiB (peak %d), CPU %v, %d timeslices, %d requests; exit %v after SIGTERM",
		*measureIdle, rss0, rss1, peak, cpu1-cpu0, slices1-slices0, req1-req0, took)
}

// BenchmarkSidecarRenewals starts the program built with -tags measure (renewal floor 250 ms, no
// margin: see measure_policy.go) against 3-second tokens, renewed about every 1.25 s (exp has whole
// seconds), and reads its RSS after the first token, and after 100 and 150 renewals.
func BenchmarkSidecarRenewals(b *testing.B) {
	bin := buildTagged(b, b.TempDir(), "measure")
	s := startSidecar(b, bin, 3*time.Second)
	pid := s.cmd.Process.Pid
	rssStart, _ := rss(b, pid)
	start := time.Now()
	s.waitRequests(b, 101)
	rss100, _ := rss(b, pid)
	s.waitRequests(b, 151)
	rss150, peak := rss(b, pid)
	elapsed := time.Since(start)
	took, err := s.stop()
	if err != nil {
		b.Errorf("exit after SIGTERM: %v", err)
	}
	if n := strings.Count(s.log(), "renewing access token failed"); n > 0 {
		b.Logf("%d failed renewals", n)
	}
	b.ReportMetric(float64(rssStart), "KiB-RSS-first-token")
	b.ReportMetric(float64(rss100), "KiB-RSS-100-renewals")
	b.ReportMetric(float64(rss150), "KiB-RSS-150-renewals")
	b.ReportMetric(float64(peak), "KiB-RSS-peak")
	b.Logf("RSS %d KiB after the first token, %d after 100 renewals, %d after 150 (peak %d); 150 renewals in %v; exit %v after SIGTERM",
		rssStart, rss100, rss150, peak, elapsed.Round(time.Millisecond), took)
}

// BenchmarkCheckVersusVersion times the release build's -check of a valid token file against its
// -version, paired: each pair runs both, in alternating order, and the figure is the median of the
// pairs' ratios, so that the machine's load (shared with others) weighs on both alike.
func BenchmarkCheckVersusVersion(b *testing.B) {
	dir := b.TempDir()
	bin := buildTagged(b, dir, "")
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(tokenFor(b, nil)), 0o644); err != nil {
		b.Fatal(err)
	}
	env := []string{"BEARER_TOKEN_FILE=" + tokenFile, "AZURE_RESOURCE=" + entratest.PrometheusResource}
	timeRun := func(arg string) time.Duration {
		cmd := exec.Command(bin, arg)
		cmd.Env = env
		start := time.Now()
		if err := cmd.Run(); err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				b.Fatalf("%s: exit status %d", arg, ee.ExitCode())
			}
			b.Fatal(err)
		}
		return time.Since(start)
	}
	for range 20 { // warm the page cache
		timeRun("-version")
		timeRun("-check")
	}
	var versions, checks, ratios []float64
	for i := range *measurePairs {
		var v, c time.Duration
		if i%2 == 0 {
			v, c = timeRun("-version"), timeRun("-check")
		} else {
			c, v = timeRun("-check"), timeRun("-version")
		}
		versions = append(versions, float64(v)/float64(time.Microsecond))
		checks = append(checks, float64(c)/float64(time.Microsecond))
		ratios = append(ratios, float64(c)/float64(v))
	}
	median := func(x []float64) float64 { x = slices.Clone(x); slices.Sort(x); return x[len(x)/2] }
	p90 := func(x []float64) float64 { x = slices.Clone(x); slices.Sort(x); return x[len(x)*9/10] }
	b.ReportMetric(median(versions), "µs-version-median")
	b.ReportMetric(median(checks), "µs-check-median")
	b.ReportMetric(median(ratios), "check/version-median")
	b.ReportMetric(p90(ratios), "check/version-p90")
	b.Logf("%d pairs: -version median %.0f µs, -check median %.0f µs; ratio median %.3f, p90 %.3f",
		len(ratios), median(versions), median(checks), median(ratios), p90(ratios))
}
