package main

import (
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// miFixture is a run's world with managed identity: the fixture's token directory and environment,
// pointed at a managed identity stand-in of one kind instead of Entra, whose stand-in must receive
// nothing.
type miFixture struct {
	*fixture
	mi *entratest.MIServer
}

func newMIFixture(t *testing.T, kind entratest.Kind) *miFixture {
	t.Helper()
	f := newFixture(t)
	mi, err := entratest.NewMIServer(kind, arcTokenDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mi.Close)
	f.secret = mi.Secret // IDENTITY_HEADER must never be printed
	f.env = map[string]string{
		"ENTRA_MANAGED_IDENTITY": "system",
		"AZURE_RESOURCE":         entratest.PrometheusResource,
		"BEARER_TOKEN_FILE":      f.tokenFile,
	}
	switch kind {
	case entratest.IMDS:
		f.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = mi.URL
	case entratest.AppService:
		f.env["IDENTITY_ENDPOINT"], f.env["IDENTITY_HEADER"] = mi.URL, mi.Secret
	case entratest.Arc:
		f.env["IDENTITY_ENDPOINT"], f.env["IMDS_ENDPOINT"] = mi.URL, "http://127.0.0.1:40342"
	case entratest.ServiceFabric:
		f.env["IDENTITY_ENDPOINT"], f.env["IDENTITY_HEADER"], f.env["IDENTITY_SERVER_THUMBPRINT"] = mi.URL, mi.Secret, mi.Thumbprint()
	}
	return &miFixture{fixture: f, mi: mi}
}

// miCase is one run with managed identity.
type miCase struct {
	name         string
	kind         entratest.Kind
	setup        func(f *miFixture)
	wantExit     int
	wantOut      []string
	notOut       []string
	wantRequests int // by the managed identity stand-in; a negative number -n: at least n
	check        func(t *testing.T, f *miFixture, out string)
}

// runMITable runs each case over run, as runTable does: the exit status, the output, nothing secret in
// it, the requests, no file after a failure, and the token file after a success.
func runMITable(t *testing.T, cases []miCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newMIFixture(t, tc.kind)
			if tc.setup != nil {
				tc.setup(f)
			}
			out, err := f.run(t.Context())
			t.Logf("output:\n%s", out)
			f.keyMaterial = f.mi.Keys() // Azure Arc's keys must never be printed
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
			if got := len(f.mi.Requests()); tc.wantRequests >= 0 && got != tc.wantRequests || tc.wantRequests < 0 && got < -tc.wantRequests {
				t.Errorf("managed identity stand-in received %d requests, want %d (negative: at least)", got, tc.wantRequests)
			}
			if got := len(f.srv.Requests()); got != 0 {
				t.Errorf("Entra stand-in received %d requests, want none", got)
			}
			if tc.wantExit != 0 {
				if diff := cmp.Diff([]string(nil), f.dirEntries()); diff != "" {
					t.Errorf("token directory after a failed run (-want +got):\n%s", diff)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
			} else {
				checkTokenFile(t, f.fixture, 0)
			}
			if tc.check != nil {
				tc.check(t, f, out)
			}
		})
	}
}

// wantMIRequest checks request i (from 0) the stand-in received: method, path, query and the headers
// the source documents.
func wantMIRequest(i int, path string, query url.Values, header map[string]string) func(t *testing.T, f *miFixture, out string) {
	return func(t *testing.T, f *miFixture, _ string) {
		t.Helper()
		reqs := f.mi.Requests()
		if i >= len(reqs) {
			t.Fatalf("no request %d", i)
		}
		r := reqs[i]
		if diff := cmp.Diff("GET "+path, r.Method+" "+r.Path); diff != "" {
			t.Errorf("request line (-want +got):\n%s", diff)
		}
		got, _ := url.ParseQuery(r.Query)
		if diff := cmp.Diff(query, got); diff != "" {
			t.Errorf("query (-want +got):\n%s", diff)
		}
		for k, v := range header {
			if v == "<secret>" {
				v = f.mi.Secret
			}
			if got := r.Header.Get(k); got != v {
				t.Errorf("header %s = %q, want %q", k, got, v)
			}
		}
		for _, k := range []string{"X-Forwarded-For", "Authorization", "X-IDENTITY-HEADER", "Secret", "Metadata"} {
			if _, ok := header[k]; !ok && r.Header.Get(k) != "" {
				t.Errorf("unexpected header %s", k)
			}
		}
	}
}

// tokenClaim returns a claim of the token in the token file.
func tokenClaim(t *testing.T, f *miFixture, name string) any {
	t.Helper()
	token, err := os.ReadFile(f.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(string(token), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil {
		t.Fatal(err)
	}
	return claims[name]
}

func wantIdentity(id entratest.ManagedIdentity) func(t *testing.T, f *miFixture, out string) {
	return func(t *testing.T, f *miFixture, _ string) {
		t.Helper()
		if got := tokenClaim(t, f, "oid"); got != id.ObjectID {
			t.Errorf("token for oid %v, want %s", got, id.ObjectID)
		}
	}
}

func both(checks ...func(t *testing.T, f *miFixture, out string)) func(t *testing.T, f *miFixture, out string) {
	return func(t *testing.T, f *miFixture, out string) {
		for _, c := range checks {
			c(t, f, out)
		}
	}
}

// TestManagedIdentityRequests checks the exact request of each source, with each selector in the
// source's own spelling, and that the token is the selected identity's.
func TestManagedIdentityRequests(t *testing.T) {
	t.Parallel()
	res := entratest.PrometheusResource
	user := entratest.UserIdentity
	imdsQuery := func(kv ...string) url.Values {
		q := url.Values{"api-version": {"2018-02-01"}, "resource": {res}}
		for i := 0; i < len(kv); i += 2 {
			q.Set(kv[i], kv[i+1])
		}
		return q
	}
	appQuery := func(kv ...string) url.Values {
		q := imdsQuery(kv...)
		q.Set("api-version", "2019-08-01")
		return q
	}
	meta := map[string]string{"Metadata": "true", "Accept": "application/json"}
	appHeader := map[string]string{"X-IDENTITY-HEADER": "<secret>"}
	setID := func(v string) func(f *miFixture) { return func(f *miFixture) { f.env["ENTRA_MANAGED_IDENTITY"] = v } }
	runMITable(t, []miCase{
		{name: "IMDS system-assigned", kind: entratest.IMDS, wantRequests: 1,
			wantOut: []string{`managed_identity=system`, `credential="managed identity"`, "source=IMDS",
				"token_endpoint=" + "http://127.0.0.1:", "proxy=none", "AZURE_POD_IDENTITY_AUTHORITY_HOST=http://127.0.0.1:", `msg="wrote access token"`},
			check: both(wantMIRequest(0, "/metadata/identity/oauth2/token", imdsQuery(), meta), wantIdentity(entratest.SystemIdentity))},
		{name: "IMDS client_id", kind: entratest.IMDS, wantRequests: 1, setup: setID("client_id=" + user.ClientID),
			wantOut: []string{`managed_identity="client_id=` + user.ClientID + `"`},
			check:   both(wantMIRequest(0, "/metadata/identity/oauth2/token", imdsQuery("client_id", user.ClientID), meta), wantIdentity(user))},
		{name: "IMDS object_id", kind: entratest.IMDS, wantRequests: 1, setup: setID("object_id=" + user.ObjectID),
			check: both(wantMIRequest(0, "/metadata/identity/oauth2/token", imdsQuery("object_id", user.ObjectID), meta), wantIdentity(user))},
		{name: "IMDS resource_id as msi_res_id", kind: entratest.IMDS, wantRequests: 1, setup: setID("resource_id=" + user.ResourceID),
			check: both(wantMIRequest(0, "/metadata/identity/oauth2/token", imdsQuery("msi_res_id", user.ResourceID), meta), wantIdentity(user))},
		{name: "App Service system-assigned", kind: entratest.AppService, wantRequests: 1,
			wantOut: []string{"source=\"App Service\"", "managed_identity=system"},
			check:   both(wantMIRequest(0, "/msi/token", appQuery(), appHeader), wantIdentity(entratest.SystemIdentity))},
		{name: "App Service client_id", kind: entratest.AppService, wantRequests: 1, setup: setID("client_id=" + user.ClientID),
			check: both(wantMIRequest(0, "/msi/token", appQuery("client_id", user.ClientID), appHeader), wantIdentity(user))},
		{name: "App Service object_id as principal_id", kind: entratest.AppService, wantRequests: 1, setup: setID("object_id=" + user.ObjectID),
			check: both(wantMIRequest(0, "/msi/token", appQuery("principal_id", user.ObjectID), appHeader), wantIdentity(user))},
		{name: "App Service resource_id as mi_res_id", kind: entratest.AppService, wantRequests: 1, setup: setID("resource_id=" + user.ResourceID),
			check: both(wantMIRequest(0, "/msi/token", appQuery("mi_res_id", user.ResourceID), appHeader), wantIdentity(user))},
		{name: "Azure Arc challenge", kind: entratest.Arc, wantRequests: 2,
			wantOut: []string{`source="Azure Arc"`, "proxy=none"},
			check: both(
				wantMIRequest(0, "/metadata/identity/oauth2/token", url.Values{"api-version": {"2020-06-01"}, "resource": {res}}, meta),
				func(t *testing.T, f *miFixture, _ string) {
					r := f.mi.Requests()[1]
					key := strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
					if r.Header.Get("Metadata") != "true" || !contains(f.mi.Keys(), key) {
						t.Errorf("second Azure Arc request: Metadata %q, Authorization not the key file's content", r.Header.Get("Metadata"))
					}
				},
				wantIdentity(entratest.SystemIdentity))},
		{name: "Service Fabric, certificate pinned by thumbprint", kind: entratest.ServiceFabric, wantRequests: 1,
			wantOut: []string{`source="Service Fabric"`},
			check: wantMIRequest(0, "/metadata/identity/oauth2/token", url.Values{"api-version": {"2019-07-01-preview"}, "resource": {res}},
				map[string]string{"Secret": "<secret>", "Accept": "application/json"})},
		{name: "resource with a trailing slash, sent as given", kind: entratest.IMDS, wantRequests: 1,
			setup: func(f *miFixture) { f.env["AZURE_RESOURCE"] = entratest.ManagementResource },
			check: func(t *testing.T, f *miFixture, _ string) {
				q, _ := url.ParseQuery(f.mi.Requests()[0].Query)
				if q.Get("resource") != entratest.ManagementResource {
					t.Errorf("resource %q, want %q", q.Get("resource"), entratest.ManagementResource)
				}
			}},
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestManagedIdentityResponses reads every shape of expires_on and expires_in the hosts send, and
// takes the expiry from the token's "exp" whatever they say.
func TestManagedIdentityResponses(t *testing.T) {
	t.Parallel()
	var cases []miCase
	for _, kind := range []entratest.Kind{entratest.IMDS, entratest.AppService} {
		for _, format := range []string{"string", "number", "date", "iso", "none"} {
			cases = append(cases, miCase{name: kind.String() + " expires_on " + format, kind: kind, wantRequests: 1,
				setup: func(f *miFixture) { f.mi.ExpiresOn = format },
				check: func(t *testing.T, f *miFixture, out string) {
					exp := int64(tokenClaim(t, f, "exp").(float64))
					if want := "expires=" + timestamp(time.Unix(exp, 0)); !strings.Contains(out, want) {
						t.Errorf("output does not hold %q", want)
					}
				}})
		}
	}
	// A response whose expires_on and expires_in contradict the token: the token's "exp" counts.
	lying := func(f *miFixture) {
		token := tokenFor(t, map[string]any{"exp": time.Now().Add(2 * time.Hour).Unix()})
		f.mi.Enqueue(jsonResponse(200, fmt.Sprintf(`{"access_token":%q,"token_type":"Bearer","expires_in":"1","expires_on":"1000","resource":%q}`, token, entratest.PrometheusResource)))
	}
	cases = append(cases,
		miCase{name: "expires_on in the past, exp in two hours", kind: entratest.IMDS, wantRequests: 1, setup: lying,
			wantOut: []string{"expires=" + timestamp(time.Now().Add(2 * time.Hour))[:13]}},
		miCase{name: "token for another audience", kind: entratest.IMDS, wantExit: 12, wantRequests: 1,
			setup: func(f *miFixture) {
				token := tokenFor(t, map[string]any{"aud": "https://management.azure.com/"})
				f.mi.Enqueue(jsonResponse(200, fmt.Sprintf(`{"access_token":%q,"token_type":"Bearer"}`, token)))
			},
			wantOut: []string{`the token's audience (aud) is \"https://management.azure.com/\"`}},
		miCase{name: "token type not Bearer", kind: entratest.IMDS, wantExit: 12, wantRequests: 1,
			setup: func(f *miFixture) {
				f.mi.Enqueue(jsonResponse(200, fmt.Sprintf(`{"access_token":%q,"token_type":"pop"}`, tokenFor(t, nil))))
			},
			wantOut: []string{`token_type is \"pop\"`}},
		miCase{name: "expired token", kind: entratest.AppService, wantExit: 12, wantRequests: 1,
			setup: func(f *miFixture) {
				f.mi.Enqueue(jsonResponse(200, fmt.Sprintf(`{"access_token":%q,"token_type":"Bearer","expires_on":"%d"}`,
					tokenFor(t, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}), time.Now().Add(time.Hour).Unix())))
			},
			wantOut: []string{"the token expired at"}},
		miCase{name: "202 Accepted with a token", kind: entratest.IMDS, wantRequests: 1,
			setup: func(f *miFixture) {
				f.mi.Enqueue(jsonResponse(202, fmt.Sprintf(`{"access_token":%q,"token_type":"Bearer"}`, tokenFor(t, nil))))
			}},
	)
	runMITable(t, cases)
}

// TestManagedIdentityRefusals gives each failure users hit its one-line reason with the fix, and
// checks which answers IMDS retries.
func TestManagedIdentityRefusals(t *testing.T) {
	t.Parallel()
	enqueue := func(rs ...entratest.Response) func(f *miFixture) {
		return func(f *miFixture) { f.mi.Enqueue(rs...) }
	}
	oauth := func(status int, code, desc string, header ...string) entratest.Response {
		return jsonResponse(status, fmt.Sprintf(`{"error":%q,"error_description":%q}`, code, desc), header...)
	}
	html := entratest.Response{Status: 502, Header: map[string]string{"Content-Type": "text/html"}, Body: "<html>Bad Gateway</html>"}
	var cases []miCase
	// IMDS retries 404, 410, 429 and 5xx but 509; never 400, 401, 403.
	for _, status := range []int{404, 410, 429, 500, 501, 502, 503, 504, 505, 507, 508, 510, 511} {
		cases = append(cases, miCase{name: fmt.Sprintf("IMDS %d retried", status), kind: entratest.IMDS, wantRequests: 2,
			setup: enqueue(oauth(status, "server_error", "try later")), wantOut: []string{"token request failed, retrying"}})
	}
	for _, status := range []int{400, 401, 403, 509} {
		cases = append(cases, miCase{name: fmt.Sprintf("IMDS %d not retried", status), kind: entratest.IMDS, wantExit: 10, wantRequests: 1,
			setup: enqueue(oauth(status, "invalid_request", "no")), notOut: []string{"retrying"},
			wantOut: []string{fmt.Sprintf("token request refused by IMDS: %d", status)}})
	}
	cases = append(cases,
		miCase{name: "IMDS 410 for a while, then a token", kind: entratest.IMDS, wantRequests: 5,
			setup: enqueue(oauth(410, "server_error", "updating"), oauth(410, "server_error", "updating"), oauth(410, "server_error", "updating"), oauth(410, "server_error", "updating"))},
		miCase{name: "IMDS Retry-After: a floor and a random share", kind: entratest.IMDS, wantRequests: 2,
			setup: enqueue(oauth(429, "invalid_request", "Temporarily throttled, too many requests", "Retry-After", "1")),
			check: func(t *testing.T, f *miFixture, out string) { retryIn(time.Second, 3*time.Second)(t, nil, out) }},
		miCase{name: "system-assigned identity not assigned", kind: entratest.IMDS, wantExit: 10, wantRequests: 1,
			setup:   func(f *miFixture) { f.mi.System = nil },
			wantOut: []string{"this VM or scale set has no system-assigned managed identity: enable it"}},
		miCase{name: "user-assigned identity not found", kind: entratest.IMDS, wantExit: 10, wantRequests: 1,
			setup:   func(f *miFixture) { f.env["ENTRA_MANAGED_IDENTITY"] = "client_id=00000000-0000-4000-8000-000000000000" },
			wantOut: []string{"the user-assigned identity client_id=00000000-0000-4000-8000-000000000000 is not assigned to this VM or scale set"}},
		miCase{name: "resource unknown", kind: entratest.IMDS, wantExit: 10, wantRequests: 1,
			setup:   func(f *miFixture) { f.env["AZURE_RESOURCE"] = "https://unknown.example" },
			wantOut: []string{"AADSTS500011", "check AZURE_RESOURCE"}},
		miCase{name: "a gateway answered instead of IMDS, until BEARER_TOKEN_TIMEOUT", kind: entratest.IMDS, wantExit: 10, wantRequests: -5,
			setup: func(f *miFixture) {
				f.env["BEARER_TOKEN_TIMEOUT"] = "2s"
				for range 1000 {
					f.mi.Enqueue(html)
				}
			},
			wantOut: []string{"not a JSON object", "giving up after", "too little time left for another (BEARER_TOKEN_TIMEOUT)"}},
		miCase{name: "a redirect is not followed", kind: entratest.IMDS, wantExit: 10, wantRequests: 1,
			setup:   enqueue(entratest.Response{Status: 307, Header: map[string]string{"Location": "http://127.0.0.1:1/elsewhere"}}),
			wantOut: []string{"307 Temporary Redirect, not a JSON object"}},
		miCase{name: "IMDS unreachable", kind: entratest.IMDS, wantExit: 10, wantRequests: 0,
			setup: func(f *miFixture) {
				f.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = closedPort(t)
				f.env["BEARER_TOKEN_TIMEOUT"] = "2s"
			},
			wantOut: []string{"no answer from IMDS at AZURE_POD_IDENTITY_AUTHORITY_HOST"}},
		miCase{name: "App Service header rejected", kind: entratest.AppService, wantExit: 10, wantRequests: 1,
			setup:   func(f *miFixture) { f.env["IDENTITY_HEADER"] = "stale-header" },
			wantOut: []string{"token request refused by App Service: 401", "rejected IDENTITY_HEADER: the platform rotates it"},
			notOut:  []string{"stale-header"}},
		miCase{name: "App Service user-assigned identity not found", kind: entratest.AppService, wantExit: 10, wantRequests: 1,
			setup:   func(f *miFixture) { f.env["ENTRA_MANAGED_IDENTITY"] = "object_id=00000000-0000-4000-8000-000000000000" },
			wantOut: []string{"is not assigned to this app"}},
		miCase{name: "the endpoint ignores the selector and hands out the system-assigned identity", kind: entratest.IMDS, wantExit: 12, wantRequests: 1,
			setup: func(f *miFixture) {
				f.env["ENTRA_MANAGED_IDENTITY"] = "resource_id=" + entratest.UserIdentity.ResourceID
				f.mi.Users = nil
				f.mi.System = &entratest.ManagedIdentity{ClientID: entratest.SystemIdentity.ClientID, ObjectID: entratest.SystemIdentity.ObjectID,
					ResourceID: "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/vmss"}
				f.mi.IgnoreSelector = true
			},
			wantOut: []string{`returned a token whose \"xms_mirid\" is`, "it ignored the selection"}},
		miCase{name: "App Service 500 retried as Entra's", kind: entratest.AppService, wantRequests: 2,
			setup: enqueue(jsonResponse(500, `{"statusCode":500,"message":"An unexpected error occured while fetching the AAD Token."}`))},
		miCase{name: "Service Fabric certificate not the pinned one, not retried", kind: entratest.ServiceFabric, wantExit: 10, wantRequests: 0,
			setup:   func(f *miFixture) { f.env["IDENTITY_SERVER_THUMBPRINT"] = strings.Repeat("AB", 20) },
			wantOut: []string{"not IDENTITY_SERVER_THUMBPRINT's"}, notOut: []string{"retrying", "no answer"}},
	)
	runMITable(t, cases)
}

// rawListener returns the URL of a loopback listener that answers every connection with answer, as
// it is, whatever the request, until the test ends.
func rawListener(t *testing.T, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = c.Read(make([]byte, 4096))
				_, _ = io.WriteString(c, answer)
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// closedPort returns the URL of a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

// TestArcKeyFile plays a hostile or broken listener on the Azure Arc agent's port: a challenge that
// names a file outside the agent's token directory, or not a .key file, or one too large, is refused
// with the path named, and nothing is read or sent; the key never appears in the output.
func TestArcKeyFile(t *testing.T) {
	t.Parallel()
	challenge := func(path string) func(f *miFixture) {
		return func(f *miFixture) {
			f.mi.Enqueue(entratest.Response{Status: 401, Header: map[string]string{"WWW-Authenticate": "Basic realm=" + path}, Body: "{}"})
		}
	}
	secretFile := filepath.Join(testDir, "not-a-key.key")
	if err := os.WriteFile(secretFile, []byte("s3cret-outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	large := filepath.Join(arcTokenDir, "large.key")
	if err := os.WriteFile(large, []byte(strings.Repeat("k", maxArcKeySize+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(arcTokenDir, "link.key")
	if err := os.Symlink(secretFile, link); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	runMITable(t, []miCase{
		{name: "another directory", kind: entratest.Arc, wantExit: 10, wantRequests: 1, setup: challenge(secretFile),
			wantOut: []string{fmt.Sprintf(`names the key file \"%s\", not a .key file in %s`, secretFile, arcTokenDir), "nothing was read or sent"},
			notOut:  []string{"s3cret-outside"}},
		{name: "climbing out with ..", kind: entratest.Arc, wantExit: 10, wantRequests: 1, setup: challenge(arcTokenDir + "/../../not-a-key.key"),
			wantOut: []string{"not a .key file in"}},
		{name: "not a .key file", kind: entratest.Arc, wantExit: 10, wantRequests: 1, setup: challenge(filepath.Join(arcTokenDir, "passwd")),
			wantOut: []string{"not a .key file in"}},
		{name: "relative path", kind: entratest.Arc, wantExit: 10, wantRequests: 1, setup: challenge("x.key"),
			wantOut: []string{"not a .key file in"}},
		{name: "no realm", kind: entratest.Arc, wantExit: 10, wantRequests: 1,
			setup:   func(f *miFixture) { f.mi.Enqueue(entratest.Response{Status: 401, Body: "{}"}) },
			wantOut: []string{`is not \"Basic realm=<key file>\"`}},
		{name: "larger than 4096 bytes", kind: entratest.Arc, wantExit: 1, wantRequests: 1, setup: challenge(large),
			wantOut: []string{"larger than 4096 bytes"}},
		{name: "a symbolic link to a file elsewhere", kind: entratest.Arc, wantExit: 1, wantRequests: 1, setup: challenge(link),
			wantOut: []string{"not a regular file (L"}, notOut: []string{"s3cret-outside"}},
		{name: "no challenge", kind: entratest.Arc, wantExit: 10, wantRequests: 1,
			setup:   func(f *miFixture) { f.mi.Enqueue(jsonResponse(200, `{}`)) },
			wantOut: []string{"answered 200 OK to the first request, want 401 with a challenge"}},
	})
}

// TestArcKeyFileRule is the path rule alone, as a table.
func TestArcKeyFileRule(t *testing.T) {
	t.Parallel()
	dir := "/var/opt/azcmagent/tokens"
	for path, ok := range map[string]bool{
		dir + "/0a1b.key":        true,
		dir + "/.key":            false,
		dir + "/..key":           false,
		dir + "/a b.key":         false,
		dir + "/6f1c-a_B9.key":   true,
		dir + "/0a1b.key.txt":    false,
		dir + "/0a1b":            false,
		dir + "/sub/0a1b.key":    false,
		dir + "/../tokens/x.key": false,
		dir + "//x.key":          false,
		dir + "/" + strings.Repeat("a", maxArcKeyName-4) + ".key": true,
		dir + "/" + strings.Repeat("a", maxArcKeyName-3) + ".key": false,
		"/etc/shadow":              false,
		"/var/opt/azcmagent/x.key": false,
		"tokens/x.key":             false,
		"":                         false,
	} {
		if err := arcKeyFile(path, dir); (err == nil) != ok {
			t.Errorf("arcKeyFile(%q) = %v, want ok %v", path, err, ok)
		}
	}
}

// TestManagedIdentityConfig refuses, before any request, what cannot work, naming the variables.
func TestManagedIdentityConfig(t *testing.T) {
	t.Parallel()
	set := func(kv ...string) func(f *miFixture) {
		return func(f *miFixture) {
			for i := 0; i < len(kv); i += 2 {
				if kv[i+1] == "" {
					delete(f.env, kv[i])
				} else {
					f.env[kv[i]] = kv[i+1]
				}
			}
		}
	}
	forms := `want \"system\", \"client_id=<GUID>\", \"object_id=<GUID>\" or \"resource_id=`
	var cases []miCase
	for _, v := range []string{"System", "user", "client_id=", "client_id=not-a-guid", "object_id=123", "resource_id=/subscriptions/x",
		"resource_id=/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
		"mi_res_id=" + entratest.UserIdentity.ResourceID, "client_id=" + entratest.UserIdentity.ClientID + " "} {
		cases = append(cases, miCase{name: "ENTRA_MANAGED_IDENTITY " + v, kind: entratest.IMDS, wantExit: 1, setup: set("ENTRA_MANAGED_IDENTITY", v),
			wantOut: []string{"ENTRA_MANAGED_IDENTITY", forms}})
	}
	cases = append(cases,
		miCase{name: "with ENTRA_SERVICE_PRINCIPAL", kind: entratest.IMDS, wantExit: 1, setup: set("ENTRA_SERVICE_PRINCIPAL", "/sp.json"),
			wantOut: []string{"both ENTRA_MANAGED_IDENTITY and ENTRA_SERVICE_PRINCIPAL are set"}},
		miCase{name: "with workload identity", kind: entratest.IMDS, wantExit: 1,
			setup:   set("AZURE_CLIENT_ID", entratest.DefaultClientID, "AZURE_TENANT_ID", entratest.DefaultTenantID, "AZURE_FEDERATED_TOKEN_FILE", "/token"),
			wantOut: []string{"both ENTRA_MANAGED_IDENTITY and workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE) are set"}},
		miCase{name: "AZURE_CLIENT_ID never selects an identity", kind: entratest.IMDS, wantExit: 1, setup: set("AZURE_CLIENT_ID", entratest.UserIdentity.ClientID),
			wantOut: []string{"both ENTRA_MANAGED_IDENTITY and workload identity (AZURE_CLIENT_ID) are set", "never with AZURE_CLIENT_ID"}},
		miCase{name: "with a certificate", kind: entratest.IMDS, wantExit: 1, setup: set("AZURE_CLIENT_CERTIFICATE_PATH", "/cert.pem"),
			wantOut: []string{"AZURE_CLIENT_CERTIFICATE_PATH"}},
		miCase{name: "nothing configured names every way", kind: entratest.IMDS, wantExit: 1, setup: set("ENTRA_MANAGED_IDENTITY", ""),
			wantOut: []string{"ENTRA_SERVICE_PRINCIPAL is not set", "AZURE_FEDERATED_TOKEN_FILE", "nor, for managed identity, ENTRA_MANAGED_IDENTITY"}},
		miCase{name: "AZURE_POD_IDENTITY_AUTHORITY_HOST with a path", kind: entratest.IMDS, wantExit: 1,
			setup:   set("AZURE_POD_IDENTITY_AUTHORITY_HOST", "http://127.0.0.1:1/metadata"),
			wantOut: []string{"AZURE_POD_IDENTITY_AUTHORITY_HOST", "want scheme://host[:port] and nothing else"}},
		miCase{name: "AZURE_POD_IDENTITY_AUTHORITY_HOST not a URL", kind: entratest.IMDS, wantExit: 1,
			setup:   set("AZURE_POD_IDENTITY_AUTHORITY_HOST", "169.254.169.254"),
			wantOut: []string{"AZURE_POD_IDENTITY_AUTHORITY_HOST", "want an http or https URL with a host"}},
		miCase{name: "Azure ML not supported", kind: entratest.IMDS, wantExit: 1, setup: set("MSI_ENDPOINT", "http://127.0.0.1:1/", "MSI_SECRET", "s"),
			wantOut: []string{"Azure Machine Learning", "not supported here"}},
		miCase{name: "Cloud Shell not supported", kind: entratest.IMDS, wantExit: 1, setup: set("MSI_ENDPOINT", "http://127.0.0.1:1/"),
			wantOut: []string{"Azure Cloud Shell", "not supported here"}},
		miCase{name: "Azure Arc user-assigned", kind: entratest.Arc, wantExit: 1, setup: set("ENTRA_MANAGED_IDENTITY", "client_id="+entratest.UserIdentity.ClientID),
			wantOut: []string{"the Azure Arc agent gives only the machine's system-assigned identity"}},
		miCase{name: "Service Fabric user-assigned", kind: entratest.ServiceFabric, wantExit: 1, setup: set("ENTRA_MANAGED_IDENTITY", "client_id="+entratest.UserIdentity.ClientID),
			wantOut: []string{"cluster's configuration"}},
		miCase{name: "Service Fabric over http", kind: entratest.ServiceFabric, wantExit: 1, setup: set("IDENTITY_ENDPOINT", "http://127.0.0.1:1/"),
			wantOut: []string{"IDENTITY_ENDPOINT", "want an https URL"}},
		miCase{name: "Service Fabric thumbprint", kind: entratest.ServiceFabric, wantExit: 1, setup: set("IDENTITY_SERVER_THUMBPRINT", "abc"),
			wantOut: []string{"IDENTITY_SERVER_THUMBPRINT: want the SHA-1 thumbprint"}},
		miCase{name: "App Service endpoint with a password", kind: entratest.AppService, wantExit: 1, setup: set("IDENTITY_ENDPOINT", "http://user:pa55word@127.0.0.1:1/"),
			wantOut: []string{"IDENTITY_ENDPOINT: want an http or https URL with a host, and no user information"}, notOut: []string{"pa55word"}},
		miCase{name: "App Service endpoint not a URL", kind: entratest.AppService, wantExit: 1, setup: set("IDENTITY_ENDPOINT", "localhost:8081"),
			wantOut: []string{"IDENTITY_ENDPOINT"}},
	)
	runMITable(t, cases)
}

// TestArcAgentFile: with no platform variable, an installed Azure Arc agent (its himds file) makes
// the source Azure Arc at its default address, as MSAL Go does; AZURE_POD_IDENTITY_AUTHORITY_HOST
// keeps IMDS. Not parallel: it creates the agent's file, which every other managed identity test
// would see.
func TestArcAgentFile(t *testing.T) {
	if err := os.WriteFile(arcAgentFile, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(arcAgentFile)
	get := func(env map[string]string) *managedIdentitySource {
		s, err := loadManagedIdentity(func(k string) string { return env[k] }, entratest.PrometheusResource)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := get(map[string]string{"ENTRA_MANAGED_IDENTITY": "system"})
	if host, u := s.resolve(); host != hostArc || u.String() != arcDefaultEndpoint {
		t.Errorf("with the agent installed: %v at %v, want Azure Arc at %s", host, u, arcDefaultEndpoint)
	}
	info, err := s.check(time.Now())
	if err != nil || !strings.Contains(fmt.Sprint(info.attrs), "Azure Arc") {
		t.Errorf("check: %v %v", info.attrs, err)
	}
	s = get(map[string]string{"ENTRA_MANAGED_IDENTITY": "client_id=" + entratest.UserIdentity.ClientID})
	if _, err := s.check(time.Now()); err == nil || !strings.Contains(err.Error(), "system-assigned") {
		t.Errorf("user-assigned on Azure Arc: %v, want a refusal", err)
	}
	s = get(map[string]string{"ENTRA_MANAGED_IDENTITY": "system", "AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:1"})
	if host, _ := s.resolve(); host != hostIMDS {
		t.Errorf("with AZURE_POD_IDENTITY_AUTHORITY_HOST: %v, want IMDS", host)
	}
}

// TestManagedIdentityNoProxy sends IMDS's and Azure Arc's requests with a client whose transport
// would send everything through a proxy: they go directly, and App Service's, which follows the
// platform's proxy rules, goes through it.
func TestManagedIdentityNoProxy(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	proxied := 0
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proxied++
		mu.Unlock()
		http.Error(w, "proxy", http.StatusBadGateway)
	}))
	defer proxy.Close()
	proxyURL, _ := url.Parse(proxy.URL)
	for _, tc := range []struct {
		kind        entratest.Kind
		wantProxied int
	}{{entratest.IMDS, 0}, {entratest.Arc, 0}, {entratest.AppService, 1}} {
		f := newMIFixture(t, tc.kind)
		src, err := loadManagedIdentity(func(k string) string { return f.env[k] }, entratest.PrometheusResource)
		if err != nil {
			t.Fatal(err)
		}
		client := newHTTPClient()
		client.Transport.(*http.Transport).Proxy = http.ProxyURL(proxyURL)
		mu.Lock()
		proxied = 0
		mu.Unlock()
		_, err = src.token(t.Context(), client, time.Now())
		mu.Lock()
		got := proxied
		mu.Unlock()
		if got != tc.wantProxied {
			t.Errorf("%v: %d requests through the proxy, want %d (error: %v)", tc.kind, got, tc.wantProxied, err)
		}
		if tc.wantProxied == 0 && (err != nil || len(f.mi.Requests()) == 0) {
			t.Errorf("%v: %v, %d requests to the endpoint; want a token, directly", tc.kind, err, len(f.mi.Requests()))
		}
	}
}

// TestIMDSRetryable is the IMDS retry classification as a table.
func TestIMDSRetryable(t *testing.T) {
	t.Parallel()
	for status := 100; status < 600; status++ {
		want := status == 404 || status == 410 || status == 429 || status >= 500 && status != 509
		if got := imdsRetryable(status); got != want {
			t.Errorf("imdsRetryable(%d) = %v, want %v", status, got, want)
		}
	}
}

// TestManagedIdentityRefresh runs refresh mode against an IMDS stand-in that caches tokens as the
// platform does, handing out the same token with the same expiry until it has less than 5 minutes
// left, or, as an endpoint whose cache keeps a token to its last moments, less than 5 seconds (where
// renewals 30 seconds apart, the floor, used to get the same token up to 30 seconds before its expiry,
// then wait past it and exit 10): the renewals must never let the file hold an expired token, and one
// 24-hour token lifetime must cost few requests.
func TestManagedIdentityRefresh(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		cacheUntil     time.Duration
		newTokens      int
		maxPerLifetime float64
	}{
		{"cached until 5 minutes before expiry", 5 * time.Minute, 3, 12},
		{"cached until 5 seconds before expiry", 5 * time.Second, 5, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newMIFixture(t, entratest.IMDS)
			f.mi.CacheUntil = tc.cacheUntil
			clk := newFakeClock()
			f.mi.Now = clk.Now
			log := &logBuffer{}
			l := startLoop(t, f.fixture, clk, log)
			l.started()
			start := clk.Now()
			l.waitFor("new tokens, or the end of the run", func() bool {
				select {
				case <-l.done:
					return true
				default:
					return f.mi.Issued() >= tc.newTokens+1
				}
			})
			select {
			case <-l.done:
				t.Fatalf("refresh mode ended with %v after %d new tokens, want it to keep the token fresh", l.err, f.mi.Issued())
			default:
			}
			if _, err := l.stop(); err != nil {
				t.Errorf("refresh mode stopped with %v, want nil", err)
			}
			_, failed := log.counts()
			reqs := f.mi.Requests()
			elapsed := clk.Now().Sub(start)
			perLifetime := float64(len(reqs)-1) * float64(24*time.Hour) / float64(reqs[len(reqs)-1].Time.Sub(reqs[0].Time))
			t.Logf("%d requests, %d new tokens over %v: %.1f requests per 24-hour token", len(reqs), f.mi.Issued(), elapsed.Round(time.Minute), perLifetime)
			if failed != 0 {
				t.Errorf("%d failed renewals, want none", failed)
			}
			if perLifetime > tc.maxPerLifetime {
				t.Errorf("%.1f requests per 24-hour token, want at most %v", perLifetime, tc.maxPerLifetime)
			}
			if strings.Contains(log.String(), "expired") {
				t.Errorf("a token expired:\n%s", log.String())
			}
			if !strings.Contains(log.String(), "same_token=true") {
				t.Errorf("no renewal said it got the same token back")
			}
		})
	}
}

// TestManualDocumentsManagedIdentityVariables is TestManualDocumentsEveryVariable for managed
// identity: every variable a run on each kind of host reads is in the manual and the README.
func TestManualDocumentsManagedIdentityVariables(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	read := map[string]bool{}
	for _, kind := range []entratest.Kind{entratest.IMDS, entratest.AppService, entratest.Arc, entratest.ServiceFabric} {
		f := newMIFixture(t, kind)
		f.env["MSI_ENDPOINT"] = "" // read for detection, and so documented, even where unset
		getenv := func(k string) string {
			mu.Lock()
			read[k] = true
			mu.Unlock()
			return f.env[k]
		}
		var out strings.Builder
		if err := run(t.Context(), []string{"azure-rest-api-token"}, getenv, slices.Sorted(maps.Keys(f.env)), &out); err != nil {
			t.Fatalf("%v: %v\n%s", kind, err, out.String())
		}
	}
	for k := range read {
		if !strings.Contains(manual(), k) {
			t.Errorf("the manual does not document %s", k)
		}
		if !strings.Contains(string(readme), "`"+k+"`") {
			t.Errorf("README.md does not document `%s`", k)
		}
	}
}

// TestManagedIdentityHostile plays a hostile or broken listener on the managed identity endpoint's
// port, and a broken platform environment: every line the program prints stays short and one line,
// nothing is read or sent that should not be, and what cannot work fails before any request.
func TestManagedIdentityHostile(t *testing.T) {
	t.Parallel()
	challenge := func(value string) func(f *miFixture) {
		return func(f *miFixture) {
			f.mi.Enqueue(entratest.Response{Status: 401, Header: map[string]string{"WWW-Authenticate": value}, Body: "{}"})
		}
	}
	fifo := filepath.Join(arcTokenDir, "fifo.key")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	dir := filepath.Join(arcTokenDir, "dir.key")
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		t.Fatal(err)
	}
	// shortLines checks that no line of the output is longer than a few KiB.
	shortLines := func(t *testing.T, _ *miFixture, out string) {
		for line := range strings.Lines(out) {
			if len(line) > 4096 {
				t.Errorf("a line of %d bytes: %.300s…", len(line), line)
			}
		}
	}
	runMITable(t, []miCase{
		{name: "Azure Arc key file with a name too long for the file system", kind: entratest.Arc, wantExit: 10, wantRequests: 1,
			setup:   challenge("Basic realm=" + arcTokenDir + "/" + strings.Repeat("a", 100_000) + ".key"),
			wantOut: []string{"not a .key file in", "nothing was read or sent"}, check: shortLines},
		{name: "Azure Arc challenge of 4 MB", kind: entratest.Arc, wantExit: 10, wantRequests: 1,
			setup: challenge("Basic realm=" + strings.Repeat("/x", 2<<20)), check: shortLines},
		{name: "Azure Arc key file a FIFO, not blocking", kind: entratest.Arc, wantExit: 1, wantRequests: 1,
			setup:   func(f *miFixture) { f.env["BEARER_TOKEN_TIMEOUT"] = "5s"; challenge("Basic realm=" + fifo)(f) },
			wantOut: []string{"not a regular file (p"}},
		{name: "Azure Arc key file a directory", kind: entratest.Arc, wantExit: 1, wantRequests: 1, setup: challenge("Basic realm=" + dir),
			wantOut: []string{"not a regular file (d"}},
		{name: "Azure Arc second request redirected, not followed", kind: entratest.Arc, wantExit: 10, wantRequests: 2,
			setup: func(f *miFixture) {
				key := filepath.Join(arcTokenDir, "redirect.key")
				if err := os.WriteFile(key, []byte("k3y-redirect"), 0o600); err != nil {
					t.Fatal(err)
				}
				f.keyMaterial = append(f.keyMaterial, "k3y-redirect")
				challenge("Basic realm=" + key)(f)
				f.mi.Enqueue(entratest.Response{Status: 302, Header: map[string]string{"Location": "http://127.0.0.1:1/steal"}})
			},
			wantOut: []string{"302 Found, not a JSON object"}, notOut: []string{"k3y-redirect"}},
		{name: "escapes and a huge description from IMDS", kind: entratest.IMDS, wantExit: 10, wantRequests: 1,
			setup: func(f *miFixture) {
				f.mi.Enqueue(jsonResponse(400, fmt.Sprintf(`{"error":"bad\u001b[31m","error_description":%q}`, "\x1b]0;pwned\x07\r\nlevel=ERROR forged "+strings.Repeat("d", 900_000))))
			},
			notOut: []string{"\x1b", "\r", "\nlevel=ERROR forged"}, check: shortLines},
		{name: "a 1 MB malformed header line from a raw listener on IMDS's port", kind: entratest.IMDS, wantExit: 10, wantRequests: 0,
			setup: func(f *miFixture) {
				f.env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = rawListener(f.t, "HTTP/1.1 200 OK\r\n\x1b[31m"+strings.Repeat("A", 1<<20)+"\r\n\r\n")
				f.env["BEARER_TOKEN_TIMEOUT"] = "1s"
			},
			wantOut: []string{"malformed MIME header"}, notOut: []string{"\x1b"}, check: shortLines},
		{name: "Service Fabric IDENTITY_HEADER with a control character", kind: entratest.ServiceFabric, wantExit: 1, wantRequests: 0,
			setup:   func(f *miFixture) { f.env["IDENTITY_HEADER"] = "secret\r\nX-Injected: 1" },
			wantOut: []string{"IDENTITY_HEADER holds control characters"}, notOut: []string{"retrying", "X-Injected"}},
		{name: "a v2 token (azp) for another client ID than the selected one", kind: entratest.IMDS, wantExit: 12, wantRequests: 1,
			setup: func(f *miFixture) {
				f.env["ENTRA_MANAGED_IDENTITY"] = "client_id=" + entratest.UserIdentity.ClientID
				token := tokenFor(t, map[string]any{"appid": nil, "ver": "2.0", "azp": entratest.SystemIdentity.ClientID})
				f.mi.Enqueue(jsonResponse(200, fmt.Sprintf(`{"access_token":%q,"token_type":"Bearer"}`, token)))
			},
			wantOut: []string{`\"azp\" is \"` + entratest.SystemIdentity.ClientID, "it ignored the selection"}},
	})
}

// swapKeyFile puts, over and over until the test ends, a link to the regular file and then what
// makeOther makes at a temporary name in path's place, by rename: a process racing readArcKey.
func swapKeyFile(t *testing.T, path, regular string, makeOther func(tmp string) error) {
	tmp := path + ".tmp"
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = os.Link(regular, tmp)
			_ = os.Rename(tmp, path)
			_ = makeOther(tmp)
			_ = os.Rename(tmp, path)
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// TestArcKeyFileSwappedForFIFO races readArcKey against a process that swaps the key file for a FIFO
// between the check of its type and its opening: the read must never block waiting for a writer that
// never comes, whichever it opens. It fails when a read has not returned after 5 seconds.
func TestArcKeyFileSwappedForFIFO(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, regular := filepath.Join(dir, "race.key"), filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, []byte("k3y"), 0o600); err != nil {
		t.Fatal(err)
	}
	swapKeyFile(t, path, regular, func(tmp string) error { return syscall.Mkfifo(tmp, 0o600) })
	reads := 0
	for start := time.Now(); time.Since(start) < time.Second; reads++ {
		done := make(chan struct{})
		go func() { _, _ = readArcKey(path); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("readArcKey blocked on a FIFO swapped in after its check (read %d)", reads+1)
		}
	}
	t.Logf("%d reads", reads)
}

// TestArcKeyFileSwappedForLink races readArcKey against a process that swaps the key file for a
// symbolic link to a file elsewhere between the check and the opening: the link is never followed,
// not even to be refused after opening, since opening can act by itself (a device, a FIFO's writer).
// The link names a FIFO whose writer waits for a reader: it is released only if a read follows it.
func TestArcKeyFileSwappedForLink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path, regular, fifo := filepath.Join(dir, "race.key"), filepath.Join(dir, "regular"), filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(regular, []byte("k3y"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	go func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil { // blocks until a reader opens the FIFO
			f.Close()
		}
		close(opened)
	}()
	t.Cleanup(func() { // release the writer
		if f, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			<-opened
			f.Close()
		}
	})
	swapKeyFile(t, path, regular, func(tmp string) error { return os.Symlink(fifo, tmp) })
	reads := 0
	for start := time.Now(); time.Since(start) < time.Second; reads++ {
		_, _ = readArcKey(path)
		select {
		case <-opened:
			t.Fatalf("readArcKey followed a symbolic link swapped in after its check (read %d)", reads+1)
		default:
		}
	}
	t.Logf("%d reads", reads)
}
