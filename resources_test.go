package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// TestResources runs the one-shot with two resources through run: one request per resource, the
// second at least requestSpacing after the first; each file in its format, for its audience, and
// -check passing on both, one line each.
func TestResources(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	arm := filepath.Join(f.tokenDir, "arm.json")
	f.env["BEARER_TOKEN_FORMAT"] = "header"
	f.env["BEARER_TOKEN_RESOURCES"] = "\n  " + entratest.ManagementResource + "=" + arm + ",json\n"
	out, err := f.run(t.Context())
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	f.checkNoSecrets(out)
	reqs := f.srv.Requests()
	var resources []string
	for _, r := range reqs {
		resources = append(resources, r.Form.Get("resource"))
	}
	if diff := cmp.Diff([]string{entratest.PrometheusResource, entratest.ManagementResource}, resources); diff != "" {
		t.Fatalf("requests' resources (-want +got):\n%s", diff)
	}
	if gap := reqs[1].Time.Sub(reqs[0].Time); gap < requestSpacing-50*time.Millisecond {
		t.Errorf("the second request came %s after the first, want at least %s", gap, requestSpacing)
	}
	header := f.readToken()
	if !strings.HasPrefix(header, "Authorization: Bearer eyJ") || !strings.HasSuffix(header, "\n") {
		t.Errorf("BEARER_TOKEN_FILE is not a header line: %d bytes", len(header))
	}
	data, err := os.ReadFile(arm)
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresOn   int64  `json:"expires_on"`
		Resource    string `json:"resource"`
	}
	if err := json.Unmarshal(data, &j); err != nil {
		t.Fatalf("arm.json: %v", err)
	}
	auds, exp, err := parseTokenClaims(j.AccessToken)
	if err != nil || j.TokenType != "Bearer" || j.Resource != entratest.ManagementResource || exp.Unix() != j.ExpiresOn ||
		!strings.Contains(strings.Join(auds, " "), "management.azure.com") {
		t.Errorf("arm.json: token_type %q, resource %q, expires_on %d, token exp %v aud %v (%v)", j.TokenType, j.Resource, j.ExpiresOn, exp, auds, err)
	}
	if mode := fileMode(t, arm); mode != 0o644 {
		t.Errorf("arm.json mode %04o, want 0644", mode)
	}
	if diff := cmp.Diff([]string{"arm.json", "token"}, f.dirEntries()); diff != "" {
		t.Errorf("token directory (-want +got):\n%s", diff)
	}

	var check strings.Builder
	err = runCheck(func(k string) string { return f.env[k] }, &check, time.Now())
	if err != nil || strings.Count(check.String(), "\n") != 2 || !strings.Contains(check.String(), `"`+arm+`" holds a token for "https://management.azure.com/"`) {
		t.Errorf("-check: %v\n%s", err, check.String())
	}
	// -check names the file that fails, and reads each in its own format.
	if err := os.WriteFile(arm, []byte(j.AccessToken), 0o644); err != nil {
		t.Fatal(err)
	}
	check.Reset()
	err = runCheck(func(k string) string { return f.env[k] }, &check, time.Now())
	if exitStatus(err) != exitCheckFailed || !strings.Contains(check.String(), `token file "`+arm+`": not a JSON object (BEARER_TOKEN_FORMAT json)`) {
		t.Errorf("-check of a bare token in a json file: exit %d, %v\n%s", exitStatus(err), err, check.String())
	}
}

// TestResourcesRefused: configuration errors of the new variables stop the run before any request
// (exit 1, no file), naming the variable and, for BEARER_TOKEN_RESOURCES, the entry; a second token
// that Entra refuses fails a one-shot with exit 10 naming it, and removes the first file.
func TestResourcesRefused(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // after the parallel subtests
	for _, tc := range []struct {
		name     string
		env      map[string]string // "DIR" in a value is the token directory
		wantExit int
		wantReqs int
		want     string
	}{
		{"unknown format", map[string]string{"BEARER_TOKEN_FORMAT": "yaml"}, exitConfig, 0,
			`BEARER_TOKEN_FORMAT: unknown format "yaml": want one of token, header, json`},
		{"entry without path", map[string]string{"BEARER_TOKEN_RESOURCES": "DIR/ok=DIR/a https://management.azure.com/"}, exitConfig, 0,
			`BEARER_TOKEN_RESOURCES entry 2 "https://management.azure.com/": want resource=path or resource=path,format`},
		{"entry with unknown format", map[string]string{"BEARER_TOKEN_RESOURCES": "https://management.azure.com/=DIR/arm,yaml"}, exitConfig, 0,
			`BEARER_TOKEN_RESOURCES entry 1 "https://management.azure.com/=DIR/arm,yaml": unknown format "yaml"`},
		{"entry with a v2 scope", map[string]string{"BEARER_TOKEN_RESOURCES": "https://management.azure.com/.default=DIR/arm"}, exitConfig, 0,
			`BEARER_TOKEN_RESOURCES entry 1 "https://management.azure.com/.default=DIR/arm": resource: this is a v2 scope`},
		{"entry repeating BEARER_TOKEN_FILE", map[string]string{"BEARER_TOKEN_RESOURCES": "https://management.azure.com/=DIR/token"}, exitConfig, 0,
			`BEARER_TOKEN_RESOURCES entry 1 "https://management.azure.com/=DIR/token": the path is also BEARER_TOKEN_FILE's: one file per token`},
		{"second file's directory missing", map[string]string{"BEARER_TOKEN_RESOURCES": "https://management.azure.com/=DIR/nodir/arm"}, exitWrite, 0,
			`creating token file in "DIR/nodir"`},
		{"metrics port in use", map[string]string{"BEARER_TOKEN_REFRESH": "true", "BEARER_TOKEN_METRICS_ADDR": busy.Addr().String()}, exitConfig, 0,
			`BEARER_TOKEN_METRICS_ADDR "` + busy.Addr().String() + `": listen tcp ` + busy.Addr().String() + `: bind: address already in use`},
		{"metrics address without port", map[string]string{"BEARER_TOKEN_REFRESH": "true", "BEARER_TOKEN_METRICS_ADDR": "9464"}, exitConfig, 0,
			`BEARER_TOKEN_METRICS_ADDR "9464": want host:port, such as :9464 or 127.0.0.1:9464`},
		{"metrics in a one-shot", map[string]string{"BEARER_TOKEN_METRICS_ADDR": ":9464"}, exitConfig, 0,
			`BEARER_TOKEN_METRICS_ADDR is set but BEARER_TOKEN_REFRESH is not "true"`},
		{"second resource refused", map[string]string{"BEARER_TOKEN_RESOURCES": "https://unknown.example/=DIR/other"}, exitRequest, 2,
			`token for "https://unknown.example/" in "DIR/other": `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			for k, v := range tc.env {
				f.env[k] = strings.ReplaceAll(v, "DIR", f.tokenDir)
			}
			out, err := f.run(t.Context())
			want := strings.ReplaceAll(tc.want, "DIR", f.tokenDir)
			if exitStatus(err) != tc.wantExit || err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("exit %d, error %v\nwant exit %d, error with %q", exitStatus(err), err, tc.wantExit, want)
			}
			if q := strconv.Quote(want); !strings.Contains(out, q[1:len(q)-1]) {
				t.Errorf("log does not hold %q:\n%s", want, out)
			}
			if n := len(f.srv.Requests()); n != tc.wantReqs {
				t.Errorf("%d requests, want %d", n, tc.wantReqs)
			}
			if names := f.dirEntries(); len(names) > 0 {
				t.Errorf("files left behind: %v", names)
			}
		})
	}
}
