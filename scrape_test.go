package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// eventClock is a simulated clock for several renewal loops at once: time moves only when every loop
// waits (n timers pending), and then to the earliest timer, which fires. So each loop's waits end at
// their own times, as on the real clock, however long its requests take in real time. onIdle runs
// each time all loops wait, before time moves: the moments when the program's state is settled.
type eventClock struct {
	n      int
	onIdle func(now time.Time) // called by the driver, without the lock
	stopAt time.Time           // the driver stops here, with the clock set to it, without firing

	mu      sync.Mutex
	now     time.Time
	pending []*eventTimer
}

type eventTimer struct {
	at time.Time
	ch chan time.Time
}

func (c *eventClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *eventClock) After(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &eventTimer{at: c.now.Add(d), ch: make(chan time.Time, 1)}
	c.pending = append(c.pending, t)
	return t.ch, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.pending = slices.DeleteFunc(c.pending, func(p *eventTimer) bool { return p == t })
		return true
	}
}

// drive moves the clock until stopAt or ctx's end, and returns how many events it fired.
func (c *eventClock) drive(ctx context.Context) int {
	events := 0
	for ctx.Err() == nil {
		c.mu.Lock()
		idle := len(c.pending) == c.n
		c.mu.Unlock()
		if !idle {
			time.Sleep(time.Millisecond)
			continue
		}
		time.Sleep(5 * time.Millisecond) // let a loop that just woke start its work
		c.mu.Lock()
		idle = len(c.pending) == c.n
		now := c.now
		c.mu.Unlock()
		if !idle {
			continue
		}
		c.onIdle(now)
		c.mu.Lock()
		slices.SortFunc(c.pending, func(a, b *eventTimer) int { return a.at.Compare(b.at) })
		next := c.pending[0]
		if next.at.After(c.stopAt) {
			c.now = c.stopAt
			c.mu.Unlock()
			c.onIdle(c.stopAt)
			return events
		}
		c.now = next.at
		c.pending = c.pending[1:]
		c.mu.Unlock()
		next.ch <- next.at
		events++
	}
	return events
}

// TestMetricsScrape keeps two tokens fresh with the metrics listener on, on a simulated clock that
// starts at Unix time 600 s (so that promtool's rule tests, which start at 0, can take the scrapes as
// they are), and scrapes /metrics over HTTP every time both loops wait: after every renewal, failure
// and retry. Entra refuses the second resource's renewals from the start; the first's succeed. Up to
// minute 66 the scrapes show that (they are what .ci/metrics-check gives promtool, written to
// $METRICS_SCRAPES_DIR when set); then the second token expires, and refresh mode exits 10 naming its
// file, with the first file in place.
func TestMetricsScrape(t *testing.T) {
	f := newFixture(t)
	arm := filepath.Join(f.tokenDir, "arm.json")
	f.env["BEARER_TOKEN_REFRESH"] = "true"
	f.env["BEARER_TOKEN_RESOURCES"] = entratest.ManagementResource + "=" + arm + ",json"
	f.env["BEARER_TOKEN_METRICS_ADDR"] = "127.0.0.1:0"
	clk := &eventClock{n: 2, now: time.Unix(600, 0), stopAt: time.Unix(4000, 0)}
	f.srv.Now = clk.Now
	getenv := func(k string) string { return f.env[k] }
	cfg, err := loadConfig(getenv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.spacer = &spacer{gap: 10 * time.Millisecond}
	l, err := listenMetrics(cfg.metricsAddr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.metrics = newMetrics("1.2.3", "abc123", "refresh", cfg.targets())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go serveMetrics(ctx, l, cfg.metrics)

	dir := os.Getenv("METRICS_SCRAPES_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	type scrape struct {
		Time int64  `json:"time"`
		File string `json:"file"`
	}
	var scrapes []scrape
	var contentType, last string
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	clk.onIdle = func(now time.Time) {
		resp, err := client.Get("http://" + l.Addr().String() + "/metrics")
		if err != nil {
			t.Errorf("scrape: %v", err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		contentType, last = resp.Header.Get("Content-Type"), string(body)
		name := fmt.Sprintf("%03d.prom", len(scrapes)+1)
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Error(err)
		}
		scrapes = append(scrapes, scrape{now.Unix(), name})
	}

	var log logBuffer
	done := make(chan error, 1)
	var srcs []source
	for _, target := range cfg.targets() {
		src, err := loadSource(getenv, target.authority, target.resource)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	go func() { done <- runJobs(ctx, cfg, srcs, slog.New(slog.NewTextHandler(&log, nil)), clk) }()
	// Both first tokens, then Entra forgets the second resource: its renewals get AADSTS500011.
	for strings.Count(log.String(), "keeping the access token fresh") < 2 {
		select {
		case err := <-done:
			t.Fatalf("refresh mode ended: %v\n%s", err, log.String())
		case <-time.After(time.Millisecond):
		}
	}
	f.srv.Change(func() { delete(f.srv.Audiences, entratest.ManagementResource) })
	events := clk.drive(ctx)

	sc := map[string]any{
		"content_type": contentType,
		"failing":      map[string]string{"resource": entratest.ManagementResource, "file": arm},
		"healthy":      map[string]string{"resource": entratest.PrometheusResource, "file": f.tokenFile},
		"scrapes":      scrapes,
	}
	data, _ := json.MarshalIndent(sc, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "scrapes.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events, %d scrapes to %s; the last:\n%s", events, len(scrapes), dir, last)
	if strings.Contains(last, `azure_rest_api_token_renewals_total{resource="https://prometheus.monitor.azure.com",file="`+f.tokenFile+`",result="success"} 0`) {
		t.Error("the first token was never renewed")
	}
	for _, want := range []string{
		`azure_rest_api_token_renewals_total{resource="https://prometheus.monitor.azure.com",file="` + f.tokenFile + `",result="failure"} 0`,
		`azure_rest_api_token_last_renewal_success_timestamp_seconds{resource="https://management.azure.com/",file="` + arm + `"} 600`,
		`azure_rest_api_token_token_expiry_timestamp_seconds{resource="https://management.azure.com/",file="` + arm + `"} 4199`,
		`azure_rest_api_token_token_issued_timestamp_seconds{resource="https://management.azure.com/",file="` + arm + `"} 300`,
		`azure_rest_api_token_build_info{version="1.2.3",commit="abc123",credential="client secret",mode="refresh"} 1`,
	} {
		if !strings.Contains(last, want+"\n") {
			t.Errorf("the last scrape lacks %s", want)
		}
	}
	if !strings.Contains(log.String(), `msg="renewing access token failed; the token file keeps the current token" token_file=`+arm) {
		t.Errorf("no failure line naming %s:\n%s", arm, log.String())
	}

	// Past minute 66: the second token expires; refresh mode exits 10, naming its file.
	clk.stopAt = time.Unix(1<<40, 0)
	go clk.drive(ctx)
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("refresh mode still running:\n%s", log.String())
	}
	if exitStatus(runErr) != exitRequest || !strings.Contains(runErr.Error(), `the access token in "`+arm+`" expired at 1970-01-01T01:09:59Z and could not be renewed`) {
		t.Errorf("refresh mode ended with %v (exit %d), want exit 10 naming %s", runErr, exitStatus(runErr), arm)
	}
	if badToken([]byte(f.readToken()), nil, clk.Now()) != "" {
		t.Errorf("the first token file: %s", badToken([]byte(f.readToken()), nil, clk.Now()))
	}
	f.checkNoSecrets(log.String())
	if errors.Is(runErr, errStuck) {
		t.Error("stuck")
	}
}
