package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// Metrics (BEARER_TOKEN_METRICS_ADDR, refresh mode only): a listener that serves /metrics in the
// Prometheus text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format), written with the
// standard library alone: a dozen series do not earn client_golang's dependencies in the image.
//
// What is exported, and what is not: per resource, the current token's "exp" and "iat" and when the
// last renewal succeeded (Unix seconds), renewals by result, token requests by HTTP status class, the
// retries among them and the 429s; and build information (version, credential kind, mode). Never a
// secret or a token; nor the client ID, which the start-up log line gives: a scrape endpoint is read
// by whoever reaches the pod's port, and an alert needs the pod, not the application registration.
// No /healthz either: the exec probe -check reads the file the app reads, which a listener in the
// same process cannot vouch for.
//
// The renewal loop only writes numbers under a mutex held for a few assignments; a scrape copies them
// under the same mutex and formats outside it, so a slow or stuck scraper never holds up a renewal.

// metricPrefix starts every metric's name.
const metricPrefix = "azure_rest_api_token_"

// Limits of the metrics listener: a scraper sends one small GET every 15 s or so.
const (
	metricsMaxConns        = 4
	metricsReadTimeout     = 10 * time.Second
	metricsWriteTimeout    = 10 * time.Second
	metricsIdleTimeout     = 60 * time.Second
	metricsMaxHeaderBytes  = 8 << 10
	metricsShutdownTimeout = time.Second
)

// resourceMetrics are one token file's numbers.
type resourceMetrics struct {
	resource, file              string
	expiry, issued, lastSuccess time.Time // zero until the first token
	renewalsOK, renewalsFailed  uint64
	requests                    [6]uint64 // by status class: [0] network error, [1..5] 1xx..5xx
	retries, throttled          uint64
	lastAttemptFailed           bool // the next request for this resource is a retry
}

// metrics is the state a scrape reads. A nil *metrics (no BEARER_TOKEN_METRICS_ADDR) records nothing.
type metrics struct {
	version, commit, credential, mode string

	mu        sync.Mutex
	resources []resourceMetrics
}

// newMetrics returns metrics for the token files of targets, in their order, with build information:
// the version as the image's tag has it, the commit ("" when not stamped) and the mode.
func newMetrics(version, commit, mode string, targets []config) *metrics {
	m := &metrics{version: version, commit: commit, mode: mode}
	for _, t := range targets {
		m.resources = append(m.resources, resourceMetrics{resource: t.resource, file: t.tokenFile})
	}
	return m
}

// tokenIssuedAt returns the "iat" of token, a JWT that [checkToken] passed, or the zero time.
func tokenIssuedAt(token string) time.Time {
	parsed, err := jwt.ParseSigned(token, tokenAlgorithms)
	if err != nil {
		return time.Time{}
	}
	var claims jwt.Claims
	if parsed.UnsafeClaimsWithoutVerification(&claims) != nil || claims.IssuedAt == nil {
		return time.Time{}
	}
	return claims.IssuedAt.Time()
}

// setCredential records the kind of credential ("client secret", "certificate", …) for build info.
func (m *metrics) setCredential(kind string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.credential = kind
	m.mu.Unlock()
}

// update runs f on the numbers of the token file file, under the mutex.
func (m *metrics) update(file string, f func(*resourceMetrics)) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.resources {
		if m.resources[i].file == file {
			f(&m.resources[i])
			return
		}
	}
}

// published records token written to file: expiry is its "exp", received when it arrived. first is
// the first token, not a renewal. Its "iat" is read only here, with metrics on.
func (m *metrics) published(file string, expiry time.Time, token string, received time.Time, first bool) {
	if m == nil {
		return
	}
	issued := tokenIssuedAt(token)
	m.update(file, func(r *resourceMetrics) {
		r.expiry, r.issued, r.lastSuccess = expiry, issued, received
		if !first {
			r.renewalsOK++
		}
	})
}

// renewalFailed records a failed renewal of file.
func (m *metrics) renewalFailed(file string) {
	m.update(file, func(r *resourceMetrics) { r.renewalsFailed++ })
}

// request records one token request for file's token: status is the HTTP status, 0 when no response
// came (a network error). A request after a failed one for the same file counts as a retry, whether
// the one-shot's retries or refresh mode's sent it.
func (m *metrics) request(file string, status int) {
	m.update(file, func(r *resourceMetrics) {
		class := status / 100
		if class < 1 || class > 5 {
			class = 0
		}
		r.requests[class]++
		if r.lastAttemptFailed {
			r.retries++
		}
		if status == http.StatusTooManyRequests {
			r.throttled++
		}
		r.lastAttemptFailed = class != 2
	})
}

// exposition returns the metrics in the Prometheus text format. It copies the numbers under the mutex
// and formats them outside it.
func (m *metrics) exposition() []byte {
	m.mu.Lock()
	rs := slices.Clone(m.resources)
	credential := m.credential
	m.mu.Unlock()

	var b bytes.Buffer
	family := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s%s %s\n# TYPE %s%s %s\n", metricPrefix, name, help, metricPrefix, name, typ)
	}
	sample := func(name string, labels []string, value string) {
		b.WriteString(metricPrefix + name + "{")
		for i := 0; i < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i] + `="` + escapeLabel(labels[i+1]) + `"`)
		}
		b.WriteString("} " + value + "\n")
	}
	res := func(r resourceMetrics, more ...string) []string {
		return append([]string{"resource", r.resource, "file", r.file}, more...)
	}
	count := func(n uint64) string { return strconv.FormatUint(n, 10) }

	family("build_info", "gauge", "Build and configuration of the running program; the value is 1.")
	sample("build_info", []string{"version", m.version, "commit", m.commit, "credential", credential, "mode", m.mode}, "1")
	for _, g := range []struct {
		name, help string
		at         func(resourceMetrics) time.Time
	}{
		{"token_expiry_timestamp_seconds", "When the token in the file expires (its exp claim), in Unix seconds.",
			func(r resourceMetrics) time.Time { return r.expiry }},
		{"token_issued_timestamp_seconds", "When the token in the file was issued (its iat claim), in Unix seconds.",
			func(r resourceMetrics) time.Time { return r.issued }},
		{"last_renewal_success_timestamp_seconds", "When the token in the file was received (the first token or the last successful renewal), in Unix seconds.",
			func(r resourceMetrics) time.Time { return r.lastSuccess }},
	} {
		family(g.name, "gauge", g.help)
		for _, r := range rs {
			if t := g.at(r); !t.IsZero() { // no series before the first token
				sample(g.name, res(r), strconv.FormatInt(t.Unix(), 10))
			}
		}
	}
	family("renewals_total", "counter", "Renewals of the token, by result (success, failure); the first token is not one.")
	for _, r := range rs {
		sample("renewals_total", res(r, "result", "success"), count(r.renewalsOK))
		sample("renewals_total", res(r, "result", "failure"), count(r.renewalsFailed))
	}
	family("token_requests_total", "counter", "Requests sent to the token endpoint, by HTTP status class (2xx…5xx, or error when no response came).")
	for _, r := range rs {
		for class, n := range r.requests {
			name := "error"
			if class > 0 {
				name = strconv.Itoa(class) + "xx"
			}
			sample("token_requests_total", res(r, "code", name), count(n))
		}
	}
	family("token_request_retries_total", "counter", "Token requests sent after a failed one for the same token.")
	for _, r := range rs {
		sample("token_request_retries_total", res(r), count(r.retries))
	}
	family("token_requests_throttled_total", "counter", "Token requests answered with HTTP 429 Too Many Requests.")
	for _, r := range rs {
		sample("token_requests_throttled_total", res(r), count(r.throttled))
	}
	return b.Bytes()
}

// escapeLabel escapes a label value as the text format requires: backslash, double quote and line feed.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// ServeHTTP serves GET and HEAD of /metrics; 404 for any other path, 405 for any other method.
func (m *metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/metrics" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body := m.exposition()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

// listenMetrics opens the metrics listener on addr (host:port) before any request is sent, so that a
// port in use or a wrong address fails the start with exit status 1. Its connections are limited to
// metricsMaxConns at a time.
func listenMetrics(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, withExit(exitConfig, fmt.Errorf("BEARER_TOKEN_METRICS_ADDR %q: %w", addr, err))
	}
	return &limitListener{Listener: l, sem: make(chan struct{}, metricsMaxConns)}, nil
}

// serveMetrics serves m on l until ctx is done, then closes l and every connection within a second.
// It never returns an error that matters to the token: a scraper's trouble is its own.
func serveMetrics(ctx context.Context, l net.Listener, m *metrics) {
	srv := &http.Server{
		Handler:           m,
		ReadHeaderTimeout: metricsReadTimeout,
		ReadTimeout:       metricsReadTimeout,
		WriteTimeout:      metricsWriteTimeout,
		IdleTimeout:       metricsIdleTimeout,
		MaxHeaderBytes:    metricsMaxHeaderBytes,
		ErrorLog:          log.New(io.Discard, "", 0), // a scraper's malformed request is not our log's business
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = l.Close()
	}
}

// limitListener accepts at most cap(sem) connections at a time, as golang.org/x/net/netutil's
// LimitListener does: Accept waits for a slot, so a flood of connections queues in the kernel's
// backlog instead of spawning goroutines.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	closeOnce sync.Once
	done      chan struct{}
	initOnce  sync.Once
}

func (l *limitListener) doneCh() chan struct{} {
	l.initOnce.Do(func() { l.done = make(chan struct{}) })
	return l.done
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.doneCh():
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.doneCh()) })
	return err
}

// limitConn gives its slot back once, on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
