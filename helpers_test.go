package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// TestMain makes every test trust the Entra stand-in the way a user trusts a private CA, through
// SSL_CERT_FILE, so that run keeps its production HTTP client; and shortens the first token's backoff.
func TestMain(m *testing.M) {
	ca, err := entratest.CAPEM()
	if err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "azure-rest-api-token-test-")
	if err != nil {
		panic(err)
	}
	testDir = dir
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca, 0o644); err != nil {
		panic(err)
	}
	os.Setenv("SSL_CERT_FILE", caFile)
	os.Unsetenv("SSL_CERT_DIR")
	firstTokenBackoff = decorrelated{base: 20 * time.Millisecond, max: 200 * time.Millisecond}
	// IMDS at a loopback port where nothing listens, so that no test can reach 169.254.169.254, and
	// Azure Arc's agent files in the test's directory (see managedidentity_test.go).
	imdsDefaultHost = "http://127.0.0.1:9"
	arcTokenDir = filepath.Join(dir, "azcmagent", "tokens")
	arcAgentFile = filepath.Join(dir, "azcmagent", "himds")
	if err := os.MkdirAll(arcTokenDir, 0o700); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testDir is a directory for the whole test process: the CA file, the built program.
var testDir string

// fixture is one run's world: an Entra stand-in, a service principal file, an empty directory for the
// token file (the emptyDir), and the environment pointing at them.
type fixture struct {
	t           *testing.T
	srv         *entratest.Server
	dir         string
	spFile      string
	tokenDir    string
	tokenFile   string
	secret      string   // the client secret, which must never be printed
	keyMaterial []string // pieces of a certificate's private key, which must never be printed either
	env         map[string]string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv, err := entratest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	f := &fixture{
		t:         t,
		srv:       srv,
		dir:       dir,
		spFile:    filepath.Join(dir, "serviceprincipal.json"),
		tokenDir:  filepath.Join(dir, "token"),
		tokenFile: filepath.Join(dir, "token", "token"),
		secret:    entratest.DefaultSecret,
	}
	if err := os.Mkdir(f.tokenDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f.writeServicePrincipal(map[string]any{
		"appId":       entratest.DefaultClientID,
		"displayName": entratest.DefaultDisplayName,
		"password":    f.secret,
		"tenant":      entratest.DefaultTenantID,
	})
	f.env = map[string]string{
		"ENTRA_SERVICE_PRINCIPAL": f.spFile,
		"AZURE_RESOURCE":          entratest.PrometheusResource,
		"BEARER_TOKEN_FILE":       f.tokenFile,
		"AZURE_AUTHORITY_HOST":    srv.URL,
	}
	return f
}

// writeServicePrincipal writes sp as JSON to the service principal file.
func (f *fixture) writeServicePrincipal(sp map[string]any) {
	f.t.Helper()
	b, err := json.MarshalIndent(sp, "", "  ")
	if err != nil {
		f.t.Fatal(err)
	}
	f.writeServicePrincipalBytes(b)
}

func (f *fixture) writeServicePrincipalBytes(b []byte) {
	f.t.Helper()
	if err := os.WriteFile(f.spFile, b, 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// setSecret registers secret with the stand-in and writes it to the service principal file.
func (f *fixture) setSecret(secret string) {
	f.t.Helper()
	f.secret = secret
	app := f.srv.Apps[entratest.DefaultClientID]
	app.Secret = secret
	f.srv.Apps[entratest.DefaultClientID] = app
	f.writeServicePrincipal(map[string]any{
		"appId":       entratest.DefaultClientID,
		"displayName": entratest.DefaultDisplayName,
		"password":    secret,
		"tenant":      entratest.DefaultTenantID,
	})
}

// run runs the program with the fixture's environment and returns what it printed and its error.
func (f *fixture) run(ctx context.Context) (string, error) {
	var out bytes.Buffer
	err := run(ctx, []string{"azure-rest-api-token"}, func(k string) string { return f.env[k] }, slices.Sorted(maps.Keys(f.env)), &out)
	return out.String(), err
}

// jwtPattern finds anything shaped like a JWS compact JWT, such as an access token.
var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`)

// checkNoSecrets fails the test if out holds the client secret or anything shaped like a token.
func (f *fixture) checkNoSecrets(out string) {
	f.t.Helper()
	if f.secret != "" && strings.Contains(out, f.secret) {
		f.t.Errorf("output holds the client secret:\n%s", out)
	}
	for _, k := range f.keyMaterial {
		if strings.Contains(out, k) {
			f.t.Errorf("output holds private key material %q:\n%s", k, out)
		}
	}
	if m := jwtPattern.FindString(out); m != "" {
		f.t.Errorf("output holds a token (%.20s…):\n%s", m, out)
	}
}

// dirEntries returns the names in the token directory, to show that nothing was left behind.
func (f *fixture) dirEntries() []string {
	f.t.Helper()
	entries, err := os.ReadDir(f.tokenDir)
	if err != nil && !os.IsNotExist(err) {
		f.t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// fileMode returns path's permission bits.
func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}
