package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// TestServeEnvFile: -serve creates DIR; sourcing each of DIR/env (client secret), DIR/env-certificate
// and DIR/env-workload-identity and running the program, with nothing else in the environment,
// writes DIR/token (issue 8: the env file lacked SSL_CERT_FILE); each request is logged as it is
// answered, and the output says how to run the image against the stand-in (issue 14, item 17).
func TestServeEnvFile(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := filepath.Join(t.TempDir(), "it's here", "new") // a quote and a space: the files must quote them
	program := filepath.Join(t.TempDir(), "azure-rest-api-token")
	if out, err := exec.Command("go", "build", "-o", program, "github.com/densify-dev/azure-rest-api-token").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out syncBuffer
	go func() { done <- serveOnly(ctx, dir, 0, &out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stand-in did not write ready")
		}
	}
	for i, tc := range []struct{ env, logged string }{
		{"env", `answered 200 to POST /` + entratest.DefaultTenantID + `/oauth2/token (client_id "` + entratest.DefaultClientID + `", resource "https://prometheus.monitor.azure.com", client secret)`},
		{"env-certificate", `answered 200 to POST /` + entratest.DefaultTenantID + `/oauth2/v2.0/token (client_id "` + entratest.DefaultClientID + `", scope "https://prometheus.monitor.azure.com/.default", client assertion)`},
		{"env-workload-identity", `answered 200 to POST /` + entratest.DefaultTenantID + `/oauth2/v2.0/token (client_id "` + entratest.DefaultClientID + `", scope "https://prometheus.monitor.azure.com/.default", client assertion)`},
	} {
		_ = os.Remove(filepath.Join(dir, "token"))
		cmd := exec.Command("sh", "-c", `. "$1/$2" && exec "$3"`, "sh", dir, tc.env, program)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		if got, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf(". DIR/%s && azure-rest-api-token: %v\n%s", tc.env, err, got)
		}
		if fi, err := os.Stat(filepath.Join(dir, "token")); err != nil || fi.Size() == 0 {
			t.Fatalf("%s: no token in DIR/token: %v", tc.env, err)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if last := lines[len(lines)-1]; !strings.HasSuffix(last, tc.logged) {
			t.Errorf("%s: last line %q\ndoes not end with %q", tc.env, last, tc.logged)
		}
		if n := strings.Count(out.String(), " answered "); n != i+1 {
			t.Errorf("%s: %d requests logged, want %d", tc.env, n, i+1)
		}
	}
	for _, want := range []string{
		`docker run --rm --network host --user "$(id -u):$(id -g)" -v '` + dir + `:` + dir + `' --env-file '` + dir + `/image.env' ` + image,
		"image-certificate.env and image-workload-identity.env",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not hold %q:\n%s", want, out.String())
		}
	}
	for _, f := range []string{"image.env", "image-certificate.env", "image-workload-identity.env"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !strings.Contains(string(data), "BEARER_TOKEN_FILE="+dir+"/token\n") {
			t.Errorf("%s: %v\n%s", f, err, data)
		}
	}
	// The same with managed identity, against the IMDS stand-in.
	cmd := exec.Command("sh", "-c", `. "$1/env-managed-identity" && exec "$2"`, "sh", dir, program)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf(". DIR/env-managed-identity && azure-rest-api-token: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "token-managed-identity")); err != nil || fi.Size() == 0 {
		t.Fatalf("no token in DIR/token-managed-identity: %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader in two goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
