package entratest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestRateLimit sends five requests at once to a stand-in that admits two a second: two tokens, then
// three 429s with the Retry-After set, each request logged with its status and recorded.
func TestRateLimit(t *testing.T) {
	s, err := NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var log bytes.Buffer
	s.RateLimit, s.RetryAfter, s.Log = 2, 5, &log
	ca, err := CAPEM()
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {DefaultSecret}, "resource": {PrometheusResource}}
	var statuses []int
	var retryAfter []string
	for range 5 {
		resp, err := client.PostForm(s.URL+DefaultTenantID+"/oauth2/token", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		retryAfter = append(retryAfter, resp.Header.Get("Retry-After"))
	}
	if diff := cmp.Diff([]int{200, 200, 429, 429, 429}, statuses); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"", "", "5", "5", "5"}, retryAfter); diff != "" {
		t.Errorf("Retry-After (-want +got):\n%s", diff)
	}
	var recorded []int
	for _, r := range s.Requests() {
		recorded = append(recorded, r.Status)
	}
	if diff := cmp.Diff(statuses, recorded); diff != "" {
		t.Errorf("recorded statuses (-want +got):\n%s", diff)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], ` 200 "`+DefaultClientID+`" "/`+DefaultTenantID+`/oauth2/token"`) || !strings.Contains(lines[4], " 429 ") {
		t.Errorf("log:\n%s", log.String())
	}
}
