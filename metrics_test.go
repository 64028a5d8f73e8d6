package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// TestMetricsExposition: the exact text a scrape gets after a first token, a renewal, a failed
// renewal with a 429 and a network error, for two token files.
func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	m := newMetrics("1.2.3", "abc123", "refresh", []config{
		{resource: "https://prometheus.monitor.azure.com", tokenFile: "/var/run/azure-token/token"},
		{resource: "https://management.azure.com/", tokenFile: `/var/run/azure-token/a"b\c`},
	})
	m.setCredential("client secret")
	f := "/var/run/azure-token/token"
	m.request(f, 200)
	m.published(f, time.Unix(1700003600, 0), iatToken(t, 1699999700), time.Unix(1700000000, 0), true)
	m.request(f, 429)
	m.request(f, 0)
	m.request(f, 200)
	m.published(f, time.Unix(1700005400, 0), iatToken(t, 1700001500), time.Unix(1700001800, 0), false)
	m.request(`/var/run/azure-token/a"b\c`, 401)
	m.renewalFailed(`/var/run/azure-token/a"b\c`)
	want := `# HELP azure_rest_api_token_build_info Build and configuration of the running program; the value is 1.
# TYPE azure_rest_api_token_build_info gauge
azure_rest_api_token_build_info{version="1.2.3",commit="abc123",credential="client secret",mode="refresh"} 1
# HELP azure_rest_api_token_token_expiry_timestamp_seconds When the token in the file expires (its exp claim), in Unix seconds.
# TYPE azure_rest_api_token_token_expiry_timestamp_seconds gauge
azure_rest_api_token_token_expiry_timestamp_seconds{resource="https://prometheus.monitor.azure.com",file="/var/run/azure-token/token"} 1700005400
# HELP azure_rest_api_token_token_issued_timestamp_seconds When the token in the file was issued (its iat claim), in Unix seconds.
# TYPE azure_rest_api_token_token_issued_timestamp_seconds gauge
azure_rest_api_token_token_issued_timestamp_seconds{resource="https://prometheus.monitor.azure.com",file="/var/run/azure-token/token"} 1700001500
# HELP azure_rest_api_token_last_renewal_success_timestamp_seconds When the token in the file was received (the first token or the last successful renewal), in Unix seconds.
# TYPE azure_rest_api_token_last_renewal_success_timestamp_seconds gauge
azure_rest_api_token_last_renewal_success_timestamp_seconds{resource="https://prometheus.monitor.azure.com",file="/var/run/azure-token/token"} 1700001800
# HELP azure_rest_api_token_renewals_total Renewals of the token, by result (success, failure); the first token is not one.
# TYPE azure_rest_api_token_renewals_total counter
azure_rest_api_token_renewals_total{resource="https://prometheus.monitor.azure.com",file="/var/run/azure-token/token",result="success"} 1
azure_rest_api_token_renewals_total{resource="https://prometheus.monitor.azure.com",file="/var/run/azure-token/token",result="failure"} 0
azure_rest_api_token_renewals_total{resource="https://management.azure.com/",file="/var/run/azure-token/a\"b\\c",result="success"} 0
azure_rest_api_token_renewals_total{resource="https://management.azure.com/",file="/var/run/azure-token/a\"b\\c",result="failure"} 1
# HELP azure_rest_api_token_token_requests_total Requests sent to the token endpoint, by HTTP status class (2xx…5xx, or error when no response came).
# TYPE azure_rest_api_token_token_requests_total counter
azure_rest_api_token_token_requests_total{resource="https://prometheus.monitor.azure.com",file="/var/run/azure-token/token",code="error"} 1
azure_rest_api_token_token_requests_total{resource="https://prometheus.monitor.azure.com",file="/var/run/azure-token/token",code="1xx"} 0
azure_rest_api_token_token_requests_total{resource="https://prometheus.monitor.azure.com",file="/var/run/azure-token/token",code="2xx"} 2
azure_rest_api_token_token_requests_total{resource="https://prometheus.monitor.azure.com",file="/var/run/azure-token/token",code="3xx"} 0
azure_rest_api_token_token_requests_total{resource="https://prometheus.monitor.azure.com",file="/var/run/azure-token/token",code="4xx"} 1
azure_rest_api_token_token_requests_total{resource="https://prometheus.monitor.azure.com",file="/var/run/azure-token/token",code="5xx"} 0
azure_rest_api_token_token_requests_total{resource="https://management.azure.com/",file="/var/run/azure-token/a\"b\\c",code="error"} 0
azure_rest_api_token_token_requests_total{resource="https://management.azure.com/",file="/var/run/azure-token/a\"b\\c",code="1xx"} 0
azure_rest_api_token_token_requests_total{resource="https://management.azure.com/",file="/var/run/azure-token/a\"b\\c",code="2xx"} 0
azure_rest_api_token_token_requests_total{resource="https://management.azure.com/",file="/var/run/azure-token/a\"b\\c",code="3xx"} 0
azure_rest_api_token_token_requests_total{resource="https://management.azure.com/",file="/var/run/azure-token/a\"b\\c",code="4xx"} 1
azure_rest_api_token_token_requests_total{resource="https://management.azure.com/",file="/var/run/azure-token/a\"b\\c",code="5xx"} 0
# HELP azure_rest_api_token_token_request_retries_total Token requests sent after a failed one for the same token.
# TYPE azure_rest_api_token_token_request_retries_total counter
azure_rest_api_token_token_request_retries_total{resource="https://prometheus.monitor.azure.com",file="/var/run/azure-token/token"} 2
azure_rest_api_token_token_request_retries_total{resource="https://management.azure.com/",file="/var/run/azure-token/a\"b\\c"} 0
# HELP azure_rest_api_token_token_requests_throttled_total Token requests answered with HTTP 429 Too Many Requests.
# TYPE azure_rest_api_token_token_requests_throttled_total counter
azure_rest_api_token_token_requests_throttled_total{resource="https://prometheus.monitor.azure.com",file="/var/run/azure-token/token"} 1
azure_rest_api_token_token_requests_throttled_total{resource="https://management.azure.com/",file="/var/run/azure-token/a\"b\\c"} 0
`
	if diff := cmp.Diff(want, string(m.exposition())); diff != "" {
		t.Errorf("exposition (-want +got):\n%s", diff)
	}
}

// TestMetricsHandler: GET and HEAD of /metrics only.
func TestMetricsHandler(t *testing.T) {
	t.Parallel()
	m := newMetrics("1.2.3", "abc123", "refresh", nil)
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/metrics", 200, "azure_rest_api_token_build_info{"},
		{"HEAD", "/metrics", 200, ""},
		{"POST", "/metrics", 405, "method not allowed"},
		{"GET", "/", 404, "404 page not found"},
		{"GET", "/healthz", 404, "404 page not found"},
		{"GET", "/metrics/", 404, "404 page not found"},
	} {
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) || tc.body == "" && rec.Body.Len() > 0 {
			t.Errorf("%s %s: %d %q, want %d with %q", tc.method, tc.path, rec.Code, rec.Body.String(), tc.status, tc.body)
		}
	}
}

// TestMetricsListener: a port in use is refused with the variable named; a connection beyond the limit
// waits in the backlog, not in a goroutine of its own, and is served once a slot is free; the server
// stops when its context ends.
func TestMetricsListener(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = listenMetrics(busy.Addr().String())
	if exitStatus(err) != exitConfig || !strings.Contains(err.Error(), "BEARER_TOKEN_METRICS_ADDR \""+busy.Addr().String()+"\": listen tcp") ||
		!strings.Contains(err.Error(), "address already in use") {
		t.Errorf("port in use: %v (exit %d)", err, exitStatus(err))
	}

	l, err := listenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { serveMetrics(ctx, l, newMetrics("1.2.3", "abc123", "refresh", nil)); close(done) }()
	// Hold every slot with idle connections (each accepted, then waiting for a request).
	var idle []net.Conn
	for range metricsMaxConns {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	got := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil}}).Get("http://" + l.Addr().String() + "/metrics")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a scrape beyond the connection limit was served at once (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	idle[0].Close()
	select {
	case err := <-got:
		if err != nil {
			t.Errorf("scrape after a slot was freed: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("scrape not served after a slot was freed")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("serveMetrics did not return after its context ended")
	}
	for _, c := range idle[1:] {
		c.Close()
	}
}

// iatToken returns a signed JWT whose "iat" is iat.
func iatToken(t *testing.T, iat int64) string {
	t.Helper()
	tok, err := entratest.SignToken(map[string]any{"iat": iat, "aud": "x", "exp": iat + 3600})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
