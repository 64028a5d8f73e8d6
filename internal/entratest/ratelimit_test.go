package entratest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRateLimit sends eight requests in a row to a stand-in that admits two a second: two tokens, then
// 429s with the Retry-After set (a token now and then, as the bucket refills while a loaded machine
// answers), each request logged with its status and recorded.
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
	start := time.Now()
	for range 8 {
		resp, err := client.PostForm(s.URL+DefaultTenantID+"/oauth2/token", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
		retryAfter = append(retryAfter, resp.Header.Get("Retry-After"))
	}
	// The bucket refills 2 a second: at most that many more 200s than the two it starts with.
	refill := int(2*time.Since(start).Seconds()) + 1
	admitted := 0
	for i, st := range statuses {
		want := map[int]string{200: "", 429: "5"}
		if ra, ok := want[st]; !ok || ra != retryAfter[i] {
			t.Errorf("request %d: status %d, Retry-After %q; want 200 without one or 429 with \"5\"", i, st, retryAfter[i])
		}
		if st == 200 {
			admitted++
		}
	}
	if statuses[0] != 200 || statuses[1] != 200 || statuses[2] != 429 && refill < 2 || admitted > 2+refill || admitted == len(statuses) {
		t.Errorf("statuses %v: want two 200s, then 429s but for at most %d refilled", statuses, refill)
	}
	var recorded []int
	for _, r := range s.Requests() {
		recorded = append(recorded, r.Status)
	}
	if diff := cmp.Diff(statuses, recorded); diff != "" {
		t.Errorf("recorded statuses (-want +got):\n%s", diff)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	last := len(statuses) - 1
	if len(lines) != len(statuses) || !strings.Contains(lines[0], ` 200 "`+DefaultClientID+`" "/`+DefaultTenantID+`/oauth2/token"`) || !strings.Contains(lines[last], fmt.Sprintf(" %d ", statuses[last])) {
		t.Errorf("log:\n%s", log.String())
	}
}
