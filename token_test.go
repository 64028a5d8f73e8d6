package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// TestRun drives the whole program, as the pod would, against the Entra stand-in: each case sets up
// the world, runs, and checks the exit status, the output, the requests the stand-in received, and the
// token file. Every failure must leave no file, and no output may hold the secret or a token.
func TestRun(t *testing.T) {
	t.Parallel()
	runTable(t, runCases())
}

// runTable runs each case as a parallel subtest; see [TestRun].
func runTable(t *testing.T, cases []runCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			before := f.dirEntries()
			out, err := f.run(t.Context())
			t.Logf("output:\n%s", out)
			f.checkNoSecrets(out)

			if got := exitStatus(err); got != tc.wantExit {
				t.Errorf("exit status = %d, want %d (error: %v)", got, tc.wantExit, err)
			}
			for _, want := range tc.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("output does not hold %q", want)
				}
			}
			for _, unwanted := range tc.notOut {
				if strings.Contains(out, unwanted) {
					t.Errorf("output holds %q", unwanted)
				}
			}
			if got := len(f.srv.Requests()); tc.wantRequests >= 0 && got != tc.wantRequests || tc.wantRequests < 0 && got < -tc.wantRequests {
				t.Errorf("stand-in received %d requests, want %d (negative: at least)", got, tc.wantRequests)
			}
			if tc.wantExit != 0 {
				if diff := cmp.Diff(before, f.dirEntries()); diff != "" {
					t.Errorf("token directory changed by a failed run (-want +got):\n%s", diff)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				return
			}
			checkTokenFile(t, f, tc.wantMode)
			if tc.check != nil {
				tc.check(t, f, out)
			}
		})
	}
}

type runCase struct {
	name         string
	setup        func(f *fixture)
	wantExit     int
	wantOut      []string    // substrings of the output
	notOut       []string    // strings the output must not hold
	wantRequests int         // the requests the stand-in receives; a negative number -n: at least n
	wantMode     os.FileMode // of the token file; 0 means 0644
	check        func(t *testing.T, f *fixture, out string)
}

// checkTokenFile checks what a successful run leaves: the token file alone in its directory, holding
// exactly the access token the stand-in issued, with the wanted mode.
func checkTokenFile(t *testing.T, f *fixture, wantMode os.FileMode) {
	t.Helper()
	if diff := cmp.Diff([]string{"token"}, f.dirEntries()); diff != "" {
		t.Errorf("token directory (-want +got):\n%s", diff)
	}
	token, err := os.ReadFile(f.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(string(token), " \r\n\t") {
		t.Errorf("token file holds white space: %q…", token[:min(len(token), 20)])
	}
	if _, err := jwt.ParseSigned(string(token), []jose.SignatureAlgorithm{jose.RS256}); err != nil {
		t.Errorf("token file does not hold a JWT: %v", err)
	}
	if wantMode == 0 {
		wantMode = 0o644
	}
	if got := fileMode(t, f.tokenFile); got != wantMode {
		t.Errorf("token file mode = %04o, want %04o", got, wantMode)
	}
}

// wantForm checks that the one request the stand-in received is the v1 client credentials request,
// with every field byte-exact.
func wantForm(tenant, resource string) func(t *testing.T, f *fixture, out string) {
	return func(t *testing.T, f *fixture, out string) {
		t.Helper()
		reqs := f.srv.Requests()
		r := reqs[len(reqs)-1]
		want := url.Values{
			"grant_type":    {"client_credentials"},
			"client_id":     {entratest.DefaultClientID},
			"client_secret": {f.secret},
			"resource":      {resource},
		}
		if diff := cmp.Diff(want, r.Form); diff != "" {
			t.Errorf("form (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff("POST /"+tenant+"/oauth2/token ?", r.Method+" "+r.Path+" ?"+r.Query); diff != "" {
			t.Errorf("request line (-want +got):\n%s", diff)
		}
		if got := r.Header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
			t.Errorf("Content-Type = %q", got)
		}
	}
}

// tokenFor returns a stand-in-signed JWT with these claims over a valid default set.
func tokenFor(t testing.TB, claims map[string]any) string {
	t.Helper()
	all := map[string]any{
		"aud": entratest.PrometheusResource, "iss": "https://sts.windows.net/" + entratest.DefaultTenantID + "/",
		"tid": entratest.DefaultTenantID, "appid": entratest.DefaultClientID, "ver": "1.0",
		"iat": time.Now().Unix(), "nbf": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}
	for k, v := range claims {
		if v == nil {
			delete(all, k)
		} else {
			all[k] = v
		}
	}
	token, err := entratest.SignToken(all)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// okBody is a 200 response carrying token as a v1 response does.
func okBody(token, tokenType string) entratest.Response {
	return entratest.Response{Status: 200, Header: map[string]string{"Content-Type": "application/json"},
		Body: string(entratest.TokenBody(token, tokenType, entratest.PrometheusResource, time.Now().Add(time.Hour)))}
}

func jsonResponse(status int, body string, header ...string) entratest.Response {
	h := map[string]string{"Content-Type": "application/json; charset=utf-8"}
	for i := 0; i+1 < len(header); i += 2 {
		h[header[i]] = header[i+1]
	}
	return entratest.Response{Status: status, Header: h, Body: body}
}

func errorResponse(status int, code string, aadsts int, header ...string) entratest.Response {
	return jsonResponse(status, string(entratest.ErrorBody(status, code, aadsts, "Something went wrong.")), header...)
}

func runCases() []runCase {
	setEnv := func(kv ...string) func(f *fixture) {
		return func(f *fixture) {
			for i := 0; i < len(kv); i += 2 {
				if kv[i+1] == "" {
					delete(f.env, kv[i])
				} else {
					f.env[kv[i]] = kv[i+1]
				}
			}
		}
	}
	enqueue := func(rs ...entratest.Response) func(f *fixture) {
		return func(f *fixture) { f.srv.Enqueue(rs...) }
	}
	sp := func(fields map[string]any) func(f *fixture) {
		return func(f *fixture) { f.writeServicePrincipal(fields) }
	}
	spBytes := func(b []byte) func(f *fixture) {
		return func(f *fixture) { f.writeServicePrincipalBytes(b) }
	}
	validSP := func(changes map[string]any) map[string]any {
		m := map[string]any{
			"appId": entratest.DefaultClientID, "displayName": entratest.DefaultDisplayName,
			"password": entratest.DefaultSecret, "tenant": entratest.DefaultTenantID,
		}
		for k, v := range changes {
			if v == "-" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	utf16le := func(s string) []byte {
		b := []byte{0xff, 0xfe}
		for _, r := range s {
			b = append(b, byte(r), byte(r>>8))
		}
		return b
	}
	validJSON, _ := json.Marshal(validSP(nil))

	cases := []runCase{
		// Success.
		{name: "success", wantRequests: 1,
			wantOut: []string{`msg="wrote access token"`, "display_name=" + entratest.DefaultDisplayName,
				"client_id=" + entratest.DefaultClientID, "audience=" + entratest.PrometheusResource, "expires=", "file="},
			check: wantForm(entratest.DefaultTenantID, entratest.PrometheusResource)},
		// A typo in an optional variable: a warning naming the closest known one, and the mode in the
		// start-up line (issue 14, item 10).
		{name: "mistyped BEARER_TOKEN_REFRESH", wantRequests: 1, setup: setEnv("BEARER_TOKEN_REFERSH", "true"),
			wantOut: []string{`level=WARN msg="BEARER_TOKEN_REFERSH is set but is not a variable this program reads, and is ignored: did you mean BEARER_TOKEN_REFRESH?"`,
				`msg="requesting access token"`, "mode=one-shot replace=false", `msg="wrote access token"`}},
		{name: "replace mode in the start-up line", wantRequests: 1, setup: setEnv("BEARER_TOKEN_FILE_REPLACE", "true"),
			wantOut: []string{"mode=one-shot replace=true"}, notOut: []string{"level=WARN"}},
		{name: "domain-name tenant", wantRequests: 1,
			setup: sp(validSP(map[string]any{"tenant": entratest.DefaultTenantDomain})),
			check: wantForm(entratest.DefaultTenantDomain, entratest.PrometheusResource)},
		{name: "authority host without trailing slash", wantRequests: 1,
			setup: func(f *fixture) { f.env["AZURE_AUTHORITY_HOST"] = strings.TrimSuffix(f.srv.URL, "/") },
			check: wantForm(entratest.DefaultTenantID, entratest.PrometheusResource)},
		{name: "unknown attributes ignored and UTF-8 byte-order mark", wantRequests: 1,
			setup: spBytes(append([]byte("\xef\xbb\xbf"), must(json.Marshal(validSP(map[string]any{"name": "http://old-cli"})))...))},
		{name: "service principal in a Kubernetes Secret volume", wantRequests: 1,
			setup: func(f *fixture) {
				vol := filepath.Join(f.dir, "secret")
				data := filepath.Join(vol, "..2026_11_29_10_00_00.123456789")
				mustDo(f.t, os.MkdirAll(data, 0o755))
				mustDo(f.t, os.WriteFile(filepath.Join(data, "sp.json"), validJSON, 0o600))
				mustDo(f.t, os.Symlink(filepath.Base(data), filepath.Join(vol, "..data")))
				mustDo(f.t, os.Symlink("..data/sp.json", filepath.Join(vol, "sp.json")))
				f.env["ENTRA_SERVICE_PRINCIPAL"] = filepath.Join(vol, "sp.json")
			}},
		{name: "resource with trailing slash sent as given, aud without", wantRequests: 1,
			setup: func(f *fixture) {
				f.env["AZURE_RESOURCE"] = "https://prometheus.monitor.azure.com/"
				f.srv.Audiences["https://prometheus.monitor.azure.com/"] = entratest.PrometheusResource
			},
			check: wantForm(entratest.DefaultTenantID, "https://prometheus.monitor.azure.com/")},
		{name: "aud with trailing slash accepted", wantRequests: 1,
			setup: func(f *fixture) {
				f.env["AZURE_RESOURCE"] = "https://management.azure.com"
				f.srv.Audiences["https://management.azure.com"] = "https://management.azure.com/"
			},
			wantOut: []string{"audience=https://management.azure.com/"}},
		{name: "BEARER_TOKEN_AUDIENCE for a v2.0 API", wantRequests: 1,
			setup: func(f *fixture) {
				f.env["AZURE_RESOURCE"] = "api://my-api"
				f.env["BEARER_TOKEN_AUDIENCE"] = "6e2b1c3d-aaaa-4bbb-8ccc-0123456789ab"
				f.srv.Audiences["api://my-api"] = "6e2b1c3d-aaaa-4bbb-8ccc-0123456789ab"
			}},
		{name: "aud array holding the resource", wantRequests: 1,
			setup: enqueue(okBody(tokenForLater(map[string]any{"aud": []string{"https://other", entratest.PrometheusResource}}), "Bearer"))},
		{name: "token_type in lower case", wantRequests: 1,
			setup: enqueue(okBody(tokenForLater(nil), "bearer"))},
		{name: "v2-style numbers in the response", wantRequests: 1,
			setup: func(f *fixture) {
				body, _ := json.Marshal(map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
					"expires_on": 1.7e9, "not_before": "garbage", "access_token": tokenFor(f.t, nil)})
				f.srv.Enqueue(jsonResponse(200, string(body)))
			}},
		{name: "LOG_FORMAT json", wantRequests: 1, setup: setEnv("LOG_FORMAT", "json"),
			check: func(t *testing.T, f *fixture, out string) {
				for line := range strings.Lines(out) {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil {
						t.Errorf("log line is not JSON: %q", line)
					}
				}
			}},
		{name: "BEARER_TOKEN_FILE_MODE 0600", wantRequests: 1, wantMode: 0o600, setup: setEnv("BEARER_TOKEN_FILE_MODE", "0600")},
		{name: "BEARER_TOKEN_FILE_MODE 440 without leading zero", wantRequests: 1, wantMode: 0o440, setup: setEnv("BEARER_TOKEN_FILE_MODE", "440")},
		{name: "relative token file path", wantRequests: 1,
			setup: func(f *fixture) {
				wd, _ := os.Getwd()
				rel, err := filepath.Rel(wd, f.tokenFile)
				mustDo(f.t, err)
				f.env["BEARER_TOKEN_FILE"] = rel
			}},

		// Retries.
		{name: "503 then success", wantRequests: 2, setup: enqueue(errorResponse(503, "temporarily_unavailable", 0)),
			wantOut: []string{"retrying", "attempt=1"}},
		{name: "429 with Retry-After then success: waits 1 to 3 s, a floor and a random share", wantRequests: 2,
			setup: enqueue(entratest.Response{Status: 429, Header: map[string]string{"Retry-After": "1", "Content-Type": "text/plain"}, Body: "Too many requests"}),
			check: retryIn(time.Second, 3*time.Second)},
		{name: "429 without Retry-After then success", wantRequests: 2,
			setup: enqueue(entratest.Response{Status: 429, Body: "Too many requests"})},
		{name: "temporarily_unavailable with 200 then success", wantRequests: 2,
			setup: enqueue(errorResponse(200, "temporarily_unavailable", 0))},
		{name: "Retry-After as an HTTP date", wantRequests: 2,
			setup: func(f *fixture) {
				// HTTP dates have whole seconds: 3 s ahead is 2 to 3 s from now.
				at := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
				f.srv.Enqueue(entratest.Response{Status: 503, Header: map[string]string{"Retry-After": at}})
			},
			check: retryIn(2*time.Second, 9*time.Second)},
		{name: "408 then success", wantRequests: 2, setup: enqueue(entratest.Response{Status: 408})},
		{name: "each attempt on a connection of its own", wantRequests: 3,
			setup: enqueue(errorResponse(503, "temporarily_unavailable", 0), errorResponse(503, "temporarily_unavailable", 0)),
			check: func(t *testing.T, f *fixture, out string) {
				seen := map[string]bool{}
				for _, r := range f.srv.Requests() {
					if seen[r.RemoteAddr] {
						t.Errorf("connection %s used again", r.RemoteAddr)
					}
					seen[r.RemoteAddr] = true
					if got := r.Header.Get("Connection"); got != "close" {
						t.Errorf("Connection: %q, want close", got)
					}
				}
			}},
		{name: "500 then success", wantRequests: 2, setup: enqueue(errorResponse(500, "server_error", 0))},
		{name: "504 then success", wantRequests: 2, setup: enqueue(entratest.Response{Status: 504, Body: "gateway timeout"})},
		{name: "numbers where strings were expected", wantRequests: 1,
			setup: func(f *fixture) {
				body, _ := json.Marshal(map[string]any{"token_type": "Bearer", "access_token": tokenFor(f.t, nil), "correlation_id": 12, "expires_on": []int{1}})
				f.srv.Enqueue(jsonResponse(200, string(body)))
			}},
		{name: "502 HTML from a proxy then success", wantRequests: 2,
			setup: enqueue(entratest.Response{Status: 502, Header: map[string]string{"Content-Type": "text/html"}, Body: "<html><body>Bad Gateway</body></html>"})},

		// Configuration errors: exit 1, before any request.
		{name: "nothing set: every missing variable in one message", wantExit: 1,
			setup:   func(f *fixture) { clear(f.env) },
			wantOut: []string{`error="ENTRA_SERVICE_PRINCIPAL is not set (nor, for workload identity, AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE; nor, for managed identity, ENTRA_MANAGED_IDENTITY); AZURE_RESOURCE is not set; BEARER_TOKEN_FILE is not set"`}},
		{name: "workload identity half set and no resource, in one message", wantExit: 1,
			setup:   setEnv("ENTRA_SERVICE_PRINCIPAL", "", "AZURE_CLIENT_ID", entratest.DefaultClientID, "AZURE_RESOURCE", ""),
			wantOut: []string{"workload identity: AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE not set", "; AZURE_RESOURCE is not set"}},
		{name: "ENTRA_SERVICE_PRINCIPAL unset", wantExit: 1, setup: setEnv("ENTRA_SERVICE_PRINCIPAL", ""), wantOut: []string{"ENTRA_SERVICE_PRINCIPAL is not set"}},
		{name: "AZURE_RESOURCE unset", wantExit: 1, setup: setEnv("AZURE_RESOURCE", ""), wantOut: []string{"AZURE_RESOURCE is not set"}},
		{name: "BEARER_TOKEN_FILE unset", wantExit: 1, setup: setEnv("BEARER_TOKEN_FILE", ""), wantOut: []string{"BEARER_TOKEN_FILE is not set"}},
		{name: "v2 scope as resource", wantExit: 1, setup: setEnv("AZURE_RESOURCE", "https://prometheus.monitor.azure.com/.default"),
			wantOut: []string{"v2 scope, not a resource"}},
		{name: "resource with a trailing newline", wantExit: 1, setup: setEnv("AZURE_RESOURCE", entratest.PrometheusResource+"\n"),
			wantOut: []string{"white space"}},
		{name: "authority with a bad port", wantExit: 1, setup: setEnv("AZURE_AUTHORITY_HOST", "https://127.0.0.1:99999/"), wantOut: []string{"AZURE_AUTHORITY_HOST"}},
		{name: "authority without a host", wantExit: 1, setup: setEnv("AZURE_AUTHORITY_HOST", "https://:443/"), wantOut: []string{"AZURE_AUTHORITY_HOST"}},
		{name: "authority with a password", wantExit: 1, wantOut: []string{"xxxxx"},
			setup: func(f *fixture) {
				f.secret = "hunter2-secret"
				f.env["AZURE_AUTHORITY_HOST"] = "https://user:" + f.secret + "@login.microsoftonline.com/"
			}},
		{name: "token file path with a trailing newline", wantExit: 1,
			setup: func(f *fixture) { f.env["BEARER_TOKEN_FILE"] += "\n" }, wantOut: []string{"BEARER_TOKEN_FILE", "control characters"}},
		{name: "service principal path with a trailing newline", wantExit: 1,
			setup: func(f *fixture) { f.env["ENTRA_SERVICE_PRINCIPAL"] += "\n" }, wantOut: []string{"ENTRA_SERVICE_PRINCIPAL", "control characters"}},
		{name: "service principal is a FIFO", wantExit: 1,
			setup: func(f *fixture) {
				fifo := filepath.Join(f.dir, "fifo")
				mustDo(f.t, syscall.Mkfifo(fifo, 0o600))
				f.env["ENTRA_SERVICE_PRINCIPAL"] = fifo
			}, wantOut: []string{"not a regular file"}},
		{name: "http authority", wantExit: 1, setup: setEnv("AZURE_AUTHORITY_HOST", "http://login.microsoftonline.com/"), wantOut: []string{"AZURE_AUTHORITY_HOST", "https"}},
		{name: "authority with a query", wantExit: 1, setup: setEnv("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/?x=1"), wantOut: []string{"AZURE_AUTHORITY_HOST"}},
		{name: "bad file mode", wantExit: 1, setup: setEnv("BEARER_TOKEN_FILE_MODE", "rw-r--r--"), wantOut: []string{"BEARER_TOKEN_FILE_MODE"}},
		{name: "file mode with setuid", wantExit: 1, setup: setEnv("BEARER_TOKEN_FILE_MODE", "4755"), wantOut: []string{"BEARER_TOKEN_FILE_MODE"}},
		{name: "bad timeout", wantExit: 1, setup: setEnv("BEARER_TOKEN_TIMEOUT", "120"), wantOut: []string{"BEARER_TOKEN_TIMEOUT"}},
		{name: "bad LOG_FORMAT", wantExit: 1, setup: setEnv("LOG_FORMAT", "xml"), wantOut: []string{"LOG_FORMAT"}},

		// Proxies that Go would ignore, connecting around them, or misread: exit 1, before any request.
		{name: "HTTPS_PROXY with an unescaped % in the password", wantExit: 1,
			setup: func(f *fixture) {
				f.secret = "pa%ss-w0rd"
				f.env["HTTPS_PROXY"] = "http://user:" + f.secret + "@127.0.0.1:3128"
			},
			wantOut: []string{`HTTPS_PROXY \"http://xxxxx@127.0.0.1:3128\": not a URL: an invalid %-escape`, "without a proxy"}},
		{name: "https_proxy missing its colon", wantExit: 1, setup: setEnv("https_proxy", "http//proxy.example:3128"),
			wantOut: []string{`https_proxy \"http://http//proxy.example:3128\"`, "nothing else"}},
		{name: "HTTP_PROXY with an unknown scheme", wantExit: 1, setup: setEnv("HTTP_PROXY", "ftp://proxy.example"),
			wantOut: []string{"HTTP_PROXY", "want the scheme http, https, socks5 or socks5h"}},
		{name: "http_proxy with a bad port, password redacted", wantExit: 1,
			setup: func(f *fixture) {
				f.secret = "s3cret-proxy-pw"
				f.env["http_proxy"] = "http://u:" + f.secret + "@proxy.example:99999"
			},
			wantOut: []string{`http_proxy \"http://u:xxxxx@proxy.example:99999\"`}},
		{name: "HTTPS_PROXY with a leading space", wantExit: 1, setup: setEnv("HTTPS_PROXY", " http://proxy.example:3128"),
			wantOut: []string{"HTTPS_PROXY", "not a URL"}},
		{name: "proxy without a scheme, as Go reads it", wantRequests: 1, wantOut: []string{"proxy=none"},
			setup: setEnv("HTTPS_PROXY", "proxy.example:3128")},
		{name: "socks5 proxy", wantRequests: 1, setup: setEnv("https_proxy", "socks5h://127.0.0.1:1080")},

		// CA certificates that crypto/x509 would ignore: exit 1, before any request.
		{name: "SSL_CERT_FILE missing", wantExit: 1, setup: func(f *fixture) { f.env["SSL_CERT_FILE"] = filepath.Join(f.dir, "ca.pem") },
			wantOut: []string{"SSL_CERT_FILE", "no such file"}},
		{name: "SSL_CERT_FILE empty", wantExit: 1,
			setup: func(f *fixture) {
				f.env["SSL_CERT_FILE"] = filepath.Join(f.dir, "ca.pem")
				mustDo(f.t, os.WriteFile(f.env["SSL_CERT_FILE"], nil, 0o644))
			},
			wantOut: []string{"SSL_CERT_FILE", "holds no PEM certificate"}},
		{name: "SSL_CERT_FILE a directory", wantExit: 1, setup: func(f *fixture) { f.env["SSL_CERT_FILE"] = f.dir },
			wantOut: []string{"SSL_CERT_FILE", ": a directory, not a file: name the file inside it, such as"}, notOut: []string{"d---------"}},
		{name: "SSL_CERT_FILE trusted", wantRequests: 1, setup: func(f *fixture) { f.env["SSL_CERT_FILE"] = os.Getenv("SSL_CERT_FILE") }},
		{name: "SSL_CERT_DIR missing", wantExit: 1, setup: func(f *fixture) { f.env["SSL_CERT_DIR"] = "/etc/ssl/certs:" + filepath.Join(f.dir, "certs") },
			wantOut: []string{"SSL_CERT_DIR", `certs\": no such file`}},
		{name: "SSL_CERT_DIR a file", wantExit: 1, setup: func(f *fixture) { f.env["SSL_CERT_DIR"] = f.spFile },
			wantOut: []string{"SSL_CERT_DIR", "not a directory"}},
		{name: "token file exists", wantExit: 1, wantOut: []string{"already exists", "init container re-run"},
			setup: func(f *fixture) { mustDo(f.t, os.WriteFile(f.tokenFile, []byte("old"), 0o644)) },
			check: nil},
		{name: "directory at token path", wantExit: 1, wantOut: []string{"already exists"},
			setup: func(f *fixture) { mustDo(f.t, os.Mkdir(f.tokenFile, 0o755)) }},
		{name: "symlink at token path", wantExit: 1, wantOut: []string{"already exists"},
			setup: func(f *fixture) { mustDo(f.t, os.Symlink(f.spFile, f.tokenFile)) }},
		{name: "dangling symlink at token path", wantExit: 1, wantOut: []string{"already exists"},
			setup: func(f *fixture) { mustDo(f.t, os.Symlink(filepath.Join(f.dir, "nowhere"), f.tokenFile)) }},
		{name: "service principal file missing", wantExit: 1, setup: func(f *fixture) { mustDo(f.t, os.Remove(f.spFile)) },
			wantOut: []string{"reading service principal", "no such file"}},
		{name: "service principal path is a directory", wantExit: 1, setup: func(f *fixture) { f.env["ENTRA_SERVICE_PRINCIPAL"] = f.dir },
			wantOut: []string{`: a directory, not a file: name the file inside it, such as \"`, `/serviceprincipal.json\"`}, notOut: []string{"d---------"}},

		// Invalid service principal file: exit 2, before any request.
		{name: "not JSON", wantExit: 2, setup: spBytes([]byte(`appId=x password=` + entratest.DefaultSecret)), wantOut: []string{"not valid JSON"}},
		{name: "secret as a bare word", wantExit: 2,
			setup: spBytes([]byte(`{"appId":"a","displayName":"d","tenant":"t","password": ` + entratest.DefaultSecret + `}`)), wantOut: []string{"syntax error at byte"}},
		{name: "secret as a number", wantExit: 2,
			setup: func(f *fixture) {
				f.secret = "84736251908"
				f.writeServicePrincipalBytes([]byte(`{"appId":"a","displayName":"d","tenant":"t","password":84736251908}`))
			}, wantOut: []string{`attribute \"password\" must be a string`}},
		{name: "JSON array", wantExit: 2, setup: spBytes([]byte(`["x"]`)), wantOut: []string{"want an object"}},
		{name: "missing appId", wantExit: 2, setup: sp(validSP(map[string]any{"appId": "-"})), wantOut: []string{`\"appId\"`}},
		{name: "missing displayName", wantExit: 2, setup: sp(validSP(map[string]any{"displayName": "-"})), wantOut: []string{`\"displayName\"`}},
		{name: "missing password", wantExit: 2, setup: sp(validSP(map[string]any{"password": "-"})), wantOut: []string{`\"password\"`}},
		{name: "empty password", wantExit: 2, setup: sp(validSP(map[string]any{"password": ""})), wantOut: []string{`\"password\"`}},
		{name: "missing tenant", wantExit: 2, setup: sp(validSP(map[string]any{"tenant": "-"})), wantOut: []string{`\"tenant\"`}},
		{name: "tenant ..", wantExit: 2, setup: sp(validSP(map[string]any{"tenant": ".."})), wantOut: []string{"tenant ID or domain name"}},
		{name: "tenant .", wantExit: 2, setup: sp(validSP(map[string]any{"tenant": "."})), wantOut: []string{"tenant ID or domain name"}},
		{name: "tenant with a slash", wantExit: 2, setup: sp(validSP(map[string]any{"tenant": "../common"})), wantOut: []string{"tenant ID or domain name"}},
		{name: "tenant with a query", wantExit: 2, setup: sp(validSP(map[string]any{"tenant": "contoso?x=y"})), wantOut: []string{"tenant ID or domain name"}},
		{name: "tenant with non-ASCII letters", wantExit: 2, setup: sp(validSP(map[string]any{"tenant": "cöntoso.com"})), wantOut: []string{"tenant ID or domain name"}},
		// Placeholders copied from the docs and malformed IDs: named before any request (issue 14, item 9).
		{name: "appId placeholder", wantExit: 2, setup: sp(validSP(map[string]any{"appId": "<app id>"})),
			wantOut: []string{`attribute \"appId\" looks like a placeholder from an example, not a client ID: want the appId \"az ad sp create-for-rbac\" printed`}, notOut: []string{"<app id>"}},
		{name: "appId all zeros", wantExit: 2, setup: sp(validSP(map[string]any{"appId": "00000000-0000-0000-0000-000000000000"})),
			wantOut: []string{`attribute \"appId\" looks like a placeholder`}},
		{name: "appId not a GUID", wantExit: 2, setup: sp(validSP(map[string]any{"appId": "my-prometheus-reader"})),
			wantOut: []string{`attribute \"appId\" is not a client ID: want a GUID, 8-4-4-4-12 hexadecimal digits`}, notOut: []string{"my-prometheus-reader"}},
		{name: "appId GUID one digit short", wantExit: 2, setup: sp(validSP(map[string]any{"appId": entratest.DefaultClientID[:35]})),
			wantOut: []string{`attribute \"appId\" is not a client ID`}},
		{name: "tenant placeholder", wantExit: 2, setup: sp(validSP(map[string]any{"tenant": "<tenant>"})),
			wantOut: []string{`attribute \"tenant\" looks like a placeholder from an example: want the tenant ID (a GUID) or a domain name`}},
		{name: "tenant ellipsis", wantExit: 2, setup: sp(validSP(map[string]any{"tenant": "…"})),
			wantOut: []string{`attribute \"tenant\" looks like a placeholder`}},
		{name: "tenant neither GUID nor domain", wantExit: 2, setup: sp(validSP(map[string]any{"tenant": "contoso"})),
			wantOut: []string{`attribute \"tenant\" must be a tenant ID or domain name: a GUID, 8-4-4-4-12 hexadecimal digits, or a domain`}},
		{name: "placeholders everywhere, password never echoed", wantExit: 2,
			setup:   sp(map[string]any{"appId": "<app id>", "displayName": "<name>", "password": entratest.DefaultSecret, "tenant": "<tenant>"}),
			wantOut: []string{`placeholder`}},
		{name: "UTF-16 with byte-order mark", wantExit: 2, setup: spBytes(utf16le(string(validJSON))), wantOut: []string{"UTF-16"}},
		{name: "UTF-16 without byte-order mark", wantExit: 2, setup: spBytes(utf16le(string(validJSON))[2:]), wantOut: []string{"UTF-16"}},
		{name: "sdk-auth file", wantExit: 2, wantOut: []string{"--sdk-auth"},
			setup: sp(map[string]any{"clientId": entratest.DefaultClientID, "clientSecret": entratest.DefaultSecret, "tenantId": entratest.DefaultTenantID,
				"subscriptionId": "x", "activeDirectoryEndpointUrl": "https://login.microsoftonline.com"})},
		{name: "create-cert file whose PEM is not here", wantExit: 1, wantOut: []string{"--create-cert", "set AZURE_CLIENT_CERTIFICATE_PATH"},
			setup: sp(validSP(map[string]any{"password": nil, "fileWithCertAndPrivateKey": "/home/me/tmpabc.pem"}))},
		{name: "larger than 1 MiB", wantExit: 2, wantOut: []string{"larger than"},
			setup: spBytes([]byte(`{"appId":"` + strings.Repeat("a", 1<<20) + `"}`))},

		// Entra refuses: exit 10, one request.
		{name: "wrong client secret", wantExit: 10, wantRequests: 1, setup: func(f *fixture) {
			f.secret = "wrong-secret-value"
			f.writeServicePrincipal(validSP(map[string]any{"password": f.secret}))
		},
			wantOut: []string{"401 Unauthorized", "invalid_client", "AADSTS7000215", "Value, not its Secret ID", "trace ID", "correlation ID", `authority \"https://127.0.0.1:`}},
		{name: "client secret with a pasted newline", wantExit: 10, wantRequests: 1,
			setup: func(f *fixture) { f.writeServicePrincipal(validSP(map[string]any{"password": f.secret + "\r\n"})) },
			wantOut: []string{`level=WARN msg="the client secret ends with \"\\r\\n\": Entra's secrets have no white space; it is sent as it is"`,
				`AADSTS7000215 (wrong client secret: it ends with \"\\r\\n\", most likely pasted with it: remove that from the service principal file's password)`},
			notOut: []string{"Secret ID"}},
		{name: "expired client secret", wantExit: 10, wantRequests: 1,
			setup: func(f *fixture) {
				app := f.srv.Apps[entratest.DefaultClientID]
				app.SecretExpired = true
				f.srv.Apps[entratest.DefaultClientID] = app
			},
			wantOut: []string{"AADSTS7000222", "expired"}},
		{name: "app not in tenant", wantExit: 10, wantRequests: 1, setup: sp(validSP(map[string]any{"appId": "00000000-dead-4bee-8f00-000000000000"})),
			wantOut: []string{"400 Bad Request", "unauthorized_client", "AADSTS700016"}},
		{name: "tenant not found", wantExit: 10, wantRequests: 1, setup: sp(validSP(map[string]any{"tenant": "fabrikam.onmicrosoft.us"})),
			wantOut: []string{"AADSTS90002", "set AZURE_AUTHORITY_HOST"}},
		{name: "resource not found", wantExit: 10, wantRequests: 1, setup: setEnv("AZURE_RESOURCE", "https://prometheus.monitor.azure.us"),
			wantOut: []string{"AADSTS500011", "check AZURE_RESOURCE"}},
		{name: "400 temporarily_unavailable not retried", wantExit: 10, wantRequests: 1, setup: enqueue(errorResponse(400, "temporarily_unavailable", 0))},
		{name: "401 temporarily_unavailable not retried", wantExit: 10, wantRequests: 1, setup: enqueue(errorResponse(401, "temporarily_unavailable", 0))},
		{name: "401 with several AADSTS codes", wantExit: 10, wantRequests: 1,
			setup:   enqueue(jsonResponse(401, `{"error":"invalid_client","error_description":"AADSTS7000222: expired.","error_codes":[7000222,50012],"trace_id":"t-2","correlation_id":"c-2"}`)),
			wantOut: []string{"AADSTS7000222 (the client secret has expired", "AADSTS50012", `trace ID \"t-2\"`}},
		{name: "error as an object", wantExit: 10, wantRequests: 1,
			setup: enqueue(jsonResponse(401, `{"error":{"code":"InvalidAuthenticationToken"}}`)), wantOut: []string{"401 Unauthorized"}},
		{name: "Retry-After too large for 32 bits", wantExit: 10, wantRequests: 1,
			setup:   enqueue(entratest.Response{Status: 429, Header: map[string]string{"Retry-After": "99999999999999999999"}}),
			wantOut: []string{"past the deadline"}},
		{name: "several AADSTS codes", wantExit: 10, wantRequests: 1,
			setup:   enqueue(jsonResponse(400, `{"error":"invalid_request","error_description":"AADSTS50012: one.\r\nTrace ID: t\r\nCorrelation ID: c\r\nTimestamp: now","error_codes":[50012,7000215],"trace_id":"t-1","correlation_id":"c-1"}`)),
			wantOut: []string{"AADSTS50012", "AADSTS7000215", `trace ID \"t-1\"`, `correlation ID \"c-1\"`, `description \"one.\"`}},
		{name: "401 with codes only in the description", wantExit: 10, wantRequests: 1,
			setup:   enqueue(jsonResponse(401, `{"error":"invalid_client","error_description":"AADSTS7000222: expired.","error_codes":"oops"}`)),
			wantOut: []string{"AADSTS7000222"}},
		{name: "200 carrying an error", wantExit: 10, wantRequests: 1, setup: enqueue(errorResponse(200, "invalid_grant", 50000)), wantOut: []string{"invalid_grant"}},
		{name: "200 without access_token", wantExit: 10, wantRequests: 1, setup: enqueue(jsonResponse(200, `{"token_type":"Bearer","expires_in":"3599"}`)),
			wantOut: []string{"no access_token"}},
		{name: "truncated body", wantExit: 10, wantRequests: 1,
			setup: func(f *fixture) {
				f.srv.Enqueue(jsonResponse(200, string(entratest.TokenBody(tokenFor(f.t, nil), "Bearer", "r", time.Now().Add(time.Hour)))[:100]))
			}, wantOut: []string{"not a JSON object", "cut short"}},
		{name: "HTML 400 from a proxy", wantExit: 10, wantRequests: 1,
			setup:   enqueue(entratest.Response{Status: 400, Header: map[string]string{"Content-Type": "text/html"}, Body: "<html>" + entratest.DefaultSecret + "</html>"}),
			wantOut: []string{"not a JSON object", "text/html"}},
		{name: "10 MiB body", wantExit: 10, wantRequests: 1,
			setup: enqueue(jsonResponse(200, `{"access_token":"`+strings.Repeat("A", 10<<20)+`"}`)), wantOut: []string{"larger than 1048576 bytes"}},
		{name: "redirect not followed", wantExit: 10, wantRequests: 1,
			setup:   enqueue(entratest.Response{Status: 307, Header: map[string]string{"Location": "https://evil.example/collect"}}),
			wantOut: []string{"redirect", "not followed"}},
		{name: "503 five times, then a token: no fixed count of attempts", wantRequests: 6,
			setup: func(f *fixture) {
				for range 5 {
					f.srv.Enqueue(errorResponse(503, "temporarily_unavailable", 0))
				}
			},
			wantOut: []string{`msg="wrote access token"`, "attempt=5"}},
		{name: "503 until BEARER_TOKEN_TIMEOUT", wantExit: 10, wantRequests: -5,
			setup: func(f *fixture) {
				f.env["BEARER_TOKEN_TIMEOUT"] = "2s"
				for range 1000 {
					f.srv.Enqueue(errorResponse(503, "temporarily_unavailable", 0))
				}
			},
			wantOut: []string{"giving up after", "too little time left for another (BEARER_TOKEN_TIMEOUT)", "503 Service Unavailable"}},
		{name: "Retry-After past the deadline", wantExit: 10, wantRequests: 1,
			setup:   enqueue(entratest.Response{Status: 429, Header: map[string]string{"Retry-After": "3600", "Content-Type": "text/plain"}, Body: "slow down"}),
			wantOut: []string{"Retry-After", "past the deadline", "429 Too Many Requests"}},
		{name: "connection refused", wantExit: 10, wantRequests: 0,
			setup: func(f *fixture) {
				f.env["AZURE_AUTHORITY_HOST"] = "https://127.0.0.1:1/"
				f.env["BEARER_TOKEN_TIMEOUT"] = "2s"
			},
			wantOut: []string{"giving up after", "connection refused"}},
		{name: "certificate from an unknown CA", wantExit: 10, wantRequests: 0,
			setup: func(f *fixture) {
				other := newUntrustedServer(f.t)
				f.env["AZURE_AUTHORITY_HOST"] = other
			},
			wantOut: []string{"certificate", "unknown authority", "SSL_CERT_FILE"}},
		{name: "certificate for other host names, hostile ones", wantExit: 10, wantRequests: 0,
			setup:   func(f *fixture) { f.env["AZURE_AUTHORITY_HOST"] = newHostileServer(f.t, hostileNames) },
			wantOut: []string{`not for host \"localhost\"`, `\"\\x1b[8mhidden\\x1b[0m\"`, "another server than AZURE_AUTHORITY_HOST names"},
			notOut:  []string{"SSL_CERT_FILE", "\x1b[8m"}},
		{name: "certificate for many names", wantExit: 10, wantRequests: 0,
			setup: func(f *fixture) {
				f.env["AZURE_AUTHORITY_HOST"] = newHostileServer(f.t, []string{"a.example", "b.example", "c.example", "d.example", "e.example", strings.Repeat("x", 200)})
			},
			wantOut: []string{`\"a.example\", \"b.example\", \"c.example\", \"d.example\", 2 more`}},
		{name: "timeout while Entra hangs", wantExit: 10, wantRequests: 1,
			setup: func(f *fixture) {
				f.env["BEARER_TOKEN_TIMEOUT"] = "300ms"
				f.srv.Enqueue(entratest.Response{Status: 200, Delay: time.Minute})
			},
			wantOut: []string{"BEARER_TOKEN_TIMEOUT (300ms) ran out"}},

		// The token is rejected: exit 12.
		{name: "wrong audience", wantExit: 12, wantRequests: 1,
			setup:   func(f *fixture) { f.srv.Audiences[entratest.PrometheusResource] = "https://other.example" },
			wantOut: []string{`audience (aud) is \"https://other.example\", want \"https://prometheus.monitor.azure.com\"`}},
		{name: "GUID audience", wantExit: 12, wantRequests: 1,
			setup: func(f *fixture) {
				f.srv.Audiences[entratest.PrometheusResource] = "6e2b1c3d-aaaa-4bbb-8ccc-0123456789ab"
			},
			wantOut: []string{"v2.0", "BEARER_TOKEN_AUDIENCE"}},
		{name: "BEARER_TOKEN_AUDIENCE mismatch", wantExit: 12, wantRequests: 1, setup: setEnv("BEARER_TOKEN_AUDIENCE", "api://something-else"),
			wantOut: []string{`want \"api://something-else\"`}},
		{name: "aud array without the resource", wantExit: 12, wantRequests: 1,
			setup:   enqueue(okBody(tokenForLater(map[string]any{"aud": []string{"https://a", "https://b"}}), "Bearer")),
			wantOut: []string{`[\"https://a\" \"https://b\"]`}},
		{name: "two trailing slashes apart", wantExit: 12, wantRequests: 1,
			setup: enqueue(okBody(tokenForLater(map[string]any{"aud": entratest.PrometheusResource + "//"}), "Bearer"))},
		{name: "expired token", wantExit: 12, wantRequests: 1, setup: func(f *fixture) { f.srv.TokenLifetime = -time.Hour },
			wantOut: []string{"expired", "check the node's clock"}},
		{name: "token not valid for 10 years (nbf)", wantExit: 12, wantRequests: 1,
			setup:   enqueue(okBody(tokenForLater(map[string]any{"nbf": time.Now().AddDate(10, 0, 0).Unix()}), "Bearer")),
			wantOut: []string{"not valid before", "(nbf)", "check the node's clock"}},
		{name: "token valid from 4 minutes ahead (clock skew): written", wantExit: 0, wantRequests: 1,
			setup: enqueue(okBody(tokenForLater(map[string]any{"nbf": time.Now().Add(4 * time.Minute).Unix()}), "Bearer"))},
		{name: "token without exp", wantExit: 12, wantRequests: 1,
			setup: enqueue(okBody(tokenForLater(map[string]any{"exp": nil}), "Bearer")), wantOut: []string{"no \\\"exp\\\""}},
		{name: "token not a JWT", wantExit: 12, wantRequests: 1, setup: enqueue(okBody("opaque-token-value", "Bearer")), wantOut: []string{"not a signed JWT"}},
		{name: "unsigned token (alg none)", wantExit: 12, wantRequests: 1,
			setup: enqueue(okBody("eyJhbGciOiJub25lIn0.eyJhdWQiOiJodHRwczovL3Byb21ldGhldXMubW9uaXRvci5henVyZS5jb20ifQ.", "Bearer")), wantOut: []string{"not a signed JWT"}},
		{name: "token_type pop", wantExit: 12, wantRequests: 1, setup: enqueue(okBody(tokenForLater(nil), "pop")), wantOut: []string{`token_type is \"pop\"`}},
		{name: "token with a newline", wantExit: 12, wantRequests: 1,
			setup: func(f *fixture) {
				tok := tokenFor(f.t, nil)
				f.srv.Enqueue(okBody(strings.Replace(tok, ".", ".\n", 1), "Bearer"))
			}, wantOut: []string{"white space or control characters"}},

		// The file cannot be written: exit 11, before any request.
		{name: "token directory missing", wantExit: 11,
			setup:   func(f *fixture) { f.env["BEARER_TOKEN_FILE"] = filepath.Join(f.dir, "missing", "token") },
			wantOut: []string{"creating token file in", "no such file or directory: the directory does not exist: mount a volume there, such as an emptyDir"}},
	}
	for _, secret := range []struct{ what, value string }{
		{"spaces", "with spaces  in it "},
		{"quotes and backslash", `quo"te's\back`},
		{"URL delimiters", "&=+%/?#;"},
		{"percent-encoded look-alike", "%2B%20+"},
		{"unicode", "pässwörd✓密码🔑"},
		{"leading dash", "-leading-dash"},
		{"Entra's own alphabet", "~8Q~abc.def_ghi-jkl"},
	} {
		cases = append(cases, runCase{
			name: "secret with " + secret.what + " arrives byte-exact", wantRequests: 1,
			setup: func(f *fixture) { f.setSecret(secret.value) },
			check: wantForm(entratest.DefaultTenantID, entratest.PrometheusResource),
		})
	}
	return cases
}

// tokenForLater returns a token built before any test runs, for table entries.
// retryIn checks that the run logged one retry, after a wait in [lo, hi).
func retryIn(lo, hi time.Duration) func(t *testing.T, f *fixture, out string) {
	return func(t *testing.T, f *fixture, out string) {
		t.Helper()
		m := regexp.MustCompile(`retry_in=(\S+)`).FindAllStringSubmatch(out, -1)
		if len(m) != 1 {
			t.Fatalf("%d retries logged, want 1", len(m))
		}
		if d, err := time.ParseDuration(m[0][1]); err != nil || d < lo || d >= hi {
			t.Errorf("retry_in=%s, want within [%v, %v)", m[0][1], lo, hi)
		}
	}
}

func tokenForLater(claims map[string]any) string {
	return tokenFor(panicTB{}, claims)
}

// panicTB is the testing.TB of table construction, where a failure is a bug in the test.
type panicTB struct{ testing.TB }

func (panicTB) Helper()               {}
func (panicTB) Fatal(args ...any)     { panic(fmt.Sprint(args...)) }
func (panicTB) Errorf(string, ...any) { panic("unexpected") }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newUntrustedServer starts a TLS server whose certificate no CA the program trusts has signed, and
// returns its URL.
func newUntrustedServer(t *testing.T) string {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the program sent a request over a TLS connection it should not have trusted")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

// entratestHang is a response that does not come for a minute.
func entratestHang() entratest.Response { return entratest.Response{Status: 200, Delay: time.Minute} }

// hostileNames are DNS names a hostile server's certificate can hold: IA5String allows every ASCII
// control character, and Go's x509 error for a hostname mismatch lists them as they are.
var hostileNames = []string{"login.microsoftonline.com\nazure-rest-api-token: all is well, ignore the line above", "\x1b[8mhidden\x1b[0m", "del\x7fnul\x00"}

// newHostileServer starts a TLS server on the loopback address with a self-signed certificate for
// names, and returns its URL with the host name localhost, so that the host name is checked against
// names (an IP address would be checked against the certificate's IP addresses).
func newHostileServer(t *testing.T, names []string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mustDo(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hostile"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: names,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	mustDo(t, err)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the program sent a request over a TLS connection it should not have trusted")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return "https://localhost:" + strings.TrimPrefix(srv.URL, "https://127.0.0.1:") + "/"
}

// maxErrorText bounds the text of any token request error, whatever the response held; the hints of
// four AADSTS codes and the description's first line make most of it.
const maxErrorText = 2500

// TestEntraErrorBounded: a 1 MB error response that repeats one AADSTS code and has huge IDs gives one
// short log line, the code once, each field cut.
func TestEntraErrorBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		codes    []int
		want     []string
		wantOnce string
	}{
		{"one code repeated", slices.Repeat([]int{7000215}, 115000), []string{"AADSTS7000215 (wrong client secret"}, "AADSTS7000215"},
		{"many codes", []int{7000215, 50012, 7000215, 90002, 700016, 500011, 1, 2, 3},
			[]string{"AADSTS7000215 (wrong", "AADSTS50012", "AADSTS90002 (tenant", "AADSTS700016 (no application", "more AADSTS codes"}, "AADSTS7000215"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			long := strings.Repeat("x", 20000)
			body, _ := json.Marshal(map[string]any{"error": "invalid_client" + long, "error_description": "AADSTS7000215: wrong." + long,
				"error_codes": tc.codes, "trace_id": long, "correlation_id": long, "timestamp": long})
			t.Logf("response body: %d bytes", len(body))
			f.srv.Enqueue(jsonResponse(401, string(body)))
			out, err := f.run(t.Context())
			if got := exitStatus(err); got != exitRequest {
				t.Fatalf("exit status %d, want %d (%v)", got, exitRequest, err)
			}
			t.Logf("error: %d bytes; output: %d bytes", len(err.Error()), len(out))
			if len(err.Error()) > maxErrorText {
				t.Errorf("error is %d bytes, want at most %d", len(err.Error()), maxErrorText)
			}
			if len(out) > 2*maxErrorText {
				t.Errorf("output is %d bytes", len(out))
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not hold %q: %v", want, err)
				}
			}
			if n := strings.Count(err.Error(), tc.wantOnce); n != 1 {
				t.Errorf("%s %d times, want once", tc.wantOnce, n)
			}
			if diff := cmp.Diff([]string(nil), f.dirEntries()); diff != "" {
				t.Errorf("token directory (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTokenCheckBounded gets tokens that fail the check with what the server chose in the message: a
// token_type that is itself the token (a gateway that swapped the fields), and a token whose "aud"
// holds thousands of long values. The error neither quotes the token nor grows with the response.
func TestTokenCheckBounded(t *testing.T) {
	t.Parallel()
	many := make([]string, 5000)
	for i := range many {
		many[i] = fmt.Sprintf("https://%d.%s", i, strings.Repeat("x", 100))
	}
	for _, tc := range []struct {
		name string
		resp func(t *testing.T) entratest.Response
		want string
	}{
		{"token_type holds the token", func(t *testing.T) entratest.Response {
			token := tokenFor(t, nil)
			return okBody(token, token)
		}, "token_type is"},
		{"thousands of audiences", func(t *testing.T) entratest.Response {
			return okBody(tokenForLater(map[string]any{"aud": many}), "Bearer")
		}, "4996 more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.srv.Enqueue(tc.resp(t))
			out, err := f.run(t.Context())
			f.checkNoSecrets(out)
			if got := exitStatus(err); got != exitTokenInvalid {
				t.Fatalf("exit status %d, want %d (%.200v)", got, exitTokenInvalid, err)
			}
			t.Logf("error: %d bytes; output: %d bytes", len(err.Error()), len(out))
			if len(err.Error()) > maxErrorText {
				t.Errorf("error is %d bytes, want at most %d", len(err.Error()), maxErrorText)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not hold %q: %.300v", tc.want, err)
			}
			if diff := cmp.Diff([]string(nil), f.dirEntries()); diff != "" {
				t.Errorf("token directory (-want +got):\n%s", diff)
			}
		})
	}
}
