package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestServeEnvFile: sourcing DIR/env and running the program, with nothing else in the environment,
// writes DIR/token (issue 8: the env file lacked SSL_CERT_FILE).
func TestServeEnvFile(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := filepath.Join(t.TempDir(), "it's here") // a quote and a space: the file must quote them
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	program := filepath.Join(t.TempDir(), "azure-rest-api-token")
	if out, err := exec.Command("go", "build", "-o", program, "github.com/densify-dev/azure-rest-api-token").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveOnly(ctx, dir, 0) }()
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
	cmd := exec.Command("sh", "-c", `. "$1/env" && exec "$2"`, "sh", dir, program)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf(". DIR/env && azure-rest-api-token: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "token")); err != nil || fi.Size() == 0 {
		t.Fatalf("no token in DIR/token: %v", err)
	}
	// The same with managed identity, against the IMDS stand-in.
	cmd = exec.Command("sh", "-c", `. "$1/env-managed-identity" && exec "$2"`, "sh", dir, program)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf(". DIR/env-managed-identity && azure-rest-api-token: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "token-managed-identity")); err != nil || fi.Size() == 0 {
		t.Fatalf("no token in DIR/token-managed-identity: %v", err)
	}
}
