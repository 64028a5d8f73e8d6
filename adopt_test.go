package main

import (
	"cmp"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// TestAdoptable is the rule for keeping a token file found at start, as a table.
func TestAdoptable(t *testing.T) {
	t.Parallel()
	now := time.Now()
	const uid, tenant, client = 1000, entratest.DefaultTenantID, entratest.DefaultClientID
	good := tokenFileFacts{regular: true, uid: uid, mode: 0o644, claims: jwtClaims{
		aud: []string{entratest.PrometheusResource}, tenant: tenant, clientID: client,
		notBefore: now.Add(-5 * time.Minute), expiry: now.Add(40 * time.Minute)}}
	with := func(change func(f *tokenFileFacts)) tokenFileFacts {
		f := good
		f.claims.aud = append([]string(nil), good.claims.aud...)
		change(&f)
		return f
	}
	for _, tc := range []struct {
		name string
		f    tokenFileFacts
		want string
	}{
		{"ours and valid for 40 minutes: kept", good, ""},
		{"audience one trailing slash apart: kept", with(func(f *tokenFileFacts) { f.claims.aud = []string{entratest.PrometheusResource + "/"} }), ""},
		{"tenant and client ID in upper case: kept", with(func(f *tokenFileFacts) {
			f.claims.tenant, f.claims.clientID = "72F988BF-0000-4000-8000-00000000C0DE", "0C7D5E1A-1111-4222-8333-444455556666"
		}), ""},
		{"a directory", with(func(f *tokenFileFacts) { f.regular = false }), "not a regular file"},
		{"another owner", with(func(f *tokenFileFacts) { f.uid = 0 }), "owned by uid 0, not this process's 1000"},
		{"another mode", with(func(f *tokenFileFacts) { f.mode = 0o600 }), "mode 0600, not BEARER_TOKEN_FILE_MODE's 0644"},
		{"not a JWT", with(func(f *tokenFileFacts) { f.err = errors.New("not a JWT") }), "not a JWT"},
		{"another audience", with(func(f *tokenFileFacts) { f.claims.aud = []string{"https://management.azure.com/"} }), "for another audience"},
		{"another tenant", with(func(f *tokenFileFacts) { f.claims.tenant = "11111111-0000-4000-8000-000000000000" }), "for another tenant"},
		{"no tenant claim", with(func(f *tokenFileFacts) { f.claims.tenant = "" }), "for another tenant"},
		{"another client ID", with(func(f *tokenFileFacts) { f.claims.clientID = "22222222-0000-4000-8000-000000000000" }), "for another client ID"},
		{"nbf 10 years ahead", with(func(f *tokenFileFacts) { f.claims.notBefore = now.AddDate(10, 0, 0) }), "not valid yet (nbf)"},
		{"expired", with(func(f *tokenFileFacts) { f.claims.expiry = now.Add(-time.Second) }), "expired at " + timestamp(now.Add(-time.Second))},
		{"within the renewal margin", with(func(f *tokenFileFacts) { f.claims.expiry = now.Add(4 * time.Minute) }), "expires at " + timestamp(now.Add(4*time.Minute)) + ", within 5m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := adoptable(tc.f, uid, 0o644, entratest.PrometheusResource, tenant, client, 5*time.Minute, now); got != tc.want {
				t.Errorf("adoptable = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestReadTokenFileFacts reads a token file as adopting sees it: type, owner, mode and claims; no file,
// a symbolic link (not followed), an empty file.
func TestReadTokenFileFacts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	token := tokenFor(t, nil)
	path := filepath.Join(dir, "token")
	mustDo(t, os.WriteFile(path, []byte(token), 0o640))
	mustDo(t, os.Chmod(path, 0o640))
	f, ok := readTokenFileFacts(path, formatToken)
	if !ok || !f.regular || f.uid != os.Geteuid() || f.mode != 0o640 || f.err != nil || f.claims.tenant == "" {
		t.Errorf("token file: %+v, %v", f, ok)
	}
	if _, ok := readTokenFileFacts(filepath.Join(dir, "none"), formatToken); ok {
		t.Error("no file: ok")
	}
	mustDo(t, os.Symlink(path, filepath.Join(dir, "link")))
	if f, ok := readTokenFileFacts(filepath.Join(dir, "link"), formatToken); !ok || f.err == nil {
		t.Errorf("symbolic link: %+v, %v; want an error, not followed", f, ok)
	}
	mustDo(t, os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644))
	if f, _ := readTokenFileFacts(filepath.Join(dir, "empty"), formatToken); f.err == nil || f.err.Error() != "empty" {
		t.Errorf("empty file: %+v", f)
	}
}

// TestRefreshAdopts starts refresh mode with a token file already at the path, as a sidecar restarted
// in its pod finds it: a token of ours, valid beyond the renewal margin, is kept with no request and
// renewed on schedule; anything else is replaced at once, as before. The log says which.
func TestRefreshAdopts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		claims  map[string]any
		mode    os.FileMode
		content string // instead of a token
		kept    bool
		lost    bool // ours, expired or about to: the start is throttled (congestion)
		wantLog string
	}{
		{name: "ours, 40 minutes left: kept", claims: map[string]any{"exp": time.Now().Add(40 * time.Minute).Unix()}, kept: true,
			wantLog: "kept the access token in the token file"},
		{name: "v2.0 token (azp): kept", claims: map[string]any{"appid": nil, "azp": entratest.DefaultClientID, "ver": "2.0"}, kept: true,
			wantLog: "kept the access token in the token file"},
		{name: "another client ID", claims: map[string]any{"appid": "22222222-0000-4000-8000-000000000000"}, wantLog: `reason="for another client ID"`},
		{name: "another tenant", claims: map[string]any{"tid": "11111111-0000-4000-8000-000000000000"}, wantLog: `reason="for another tenant"`},
		{name: "another audience", claims: map[string]any{"aud": entratest.ManagementResource}, wantLog: `reason="for another audience"`},
		{name: "within the renewal margin", claims: map[string]any{"exp": time.Now().Add(4 * time.Minute).Unix()}, lost: true, wantLog: "within 5m0s"},
		{name: "expired", claims: map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}, lost: true, wantLog: `reason="expired at`},
		{name: "not valid for 10 years", claims: map[string]any{"nbf": time.Now().AddDate(10, 0, 0).Unix()}, wantLog: "not valid yet (nbf)"},
		{name: "another mode", mode: 0o600, wantLog: "mode 0600, not BEARER_TOKEN_FILE_MODE's 0644"},
		{name: "not a token", content: "left-by-someone-else", wantLog: "not a signed JWT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			content := tc.content
			if content == "" {
				content = tokenFor(t, tc.claims)
			}
			mode := cmp.Or(tc.mode, 0o644)
			mustDo(t, os.WriteFile(f.tokenFile, []byte(content), mode))
			mustDo(t, os.Chmod(f.tokenFile, mode))
			clk := newFakeClock()
			clk.Pause()
			l := startLoop(t, f, clk, &logBuffer{})
			l.started()
			out := l.log.String()
			if !strings.Contains(out, tc.wantLog) {
				t.Errorf("log does not hold %q:\n%s", tc.wantLog, out)
			}
			if throttled := strings.Contains(out, "throttled=true"); throttled != tc.lost {
				t.Errorf("the start is throttled: %v, want %v:\n%s", throttled, tc.lost, out)
			}
			requests := len(f.srv.Requests())
			if tc.kept {
				if requests != 0 || f.readToken() != content {
					t.Errorf("%d requests, file kept: %v; want no request, the file kept", requests, f.readToken() == content)
				}
				clk.Resume() // the renewal comes on schedule, and replaces the file
				l.renewals(1)
				if f.readToken() == content {
					t.Error("the adopted token was not renewed")
				}
			} else if requests != 1 || f.readToken() == content {
				t.Errorf("%d requests, file replaced: %v; want one request and a new token", requests, f.readToken() != content)
			}
			if _, err := l.stop(); err != nil {
				t.Errorf("refresh mode stopped with %v, want nil", err)
			}
		})
	}
}
