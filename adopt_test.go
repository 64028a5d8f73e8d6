package main

import (
	"errors"
	"os"
	"path/filepath"
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
	f, ok := readTokenFileFacts(path)
	if !ok || !f.regular || f.uid != os.Geteuid() || f.mode != 0o640 || f.err != nil || f.claims.tenant == "" {
		t.Errorf("token file: %+v, %v", f, ok)
	}
	if _, ok := readTokenFileFacts(filepath.Join(dir, "none")); ok {
		t.Error("no file: ok")
	}
	mustDo(t, os.Symlink(path, filepath.Join(dir, "link")))
	if f, ok := readTokenFileFacts(filepath.Join(dir, "link")); !ok || f.err == nil {
		t.Errorf("symbolic link: %+v, %v; want an error, not followed", f, ok)
	}
	mustDo(t, os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644))
	if f, _ := readTokenFileFacts(filepath.Join(dir, "empty")); f.err == nil || f.err.Error() != "empty" {
		t.Errorf("empty file: %+v", f)
	}
}
