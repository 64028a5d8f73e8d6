// Command demo shows azure-rest-api-token at work on a machine with no Azure account. It starts the
// Entra ID stand-in of internal/entratest on 127.0.0.1, writes a service principal file like the one
// "az ad sp create-for-rbac" prints, builds the real program and runs it against the stand-in, with only
// the environment a user would set (AZURE_AUTHORITY_HOST and SSL_CERT_FILE point it at the stand-in),
// then shows the token file and its decoded claims; then runs it again with managed identity against an
// IMDS stand-in.
//
// Usage, from the repository:
//
//	go run ./demo                  # the whole demo, in a temporary directory
//	go run ./demo -program PATH    # run an already built binary instead of building one
//	go run ./demo -serve DIR [-token-lifetime 90s]
//	                               # only serve: write DIR/ca.pem, DIR/serviceprincipal.json and DIR/env,
//	                               # then DIR/ready, and answer token requests until SIGINT or SIGTERM;
//	                               # DIR/env-managed-identity does the same with an IMDS stand-in
//
// DIR/env is complete: ". DIR/env" exports every variable the program needs to get a token from the
// stand-in (ENTRA_SERVICE_PRINCIPAL, AZURE_RESOURCE, BEARER_TOKEN_FILE=DIR/token,
// AZURE_AUTHORITY_HOST and SSL_CERT_FILE=DIR/ca.pem), so that sourcing it and running the program
// writes DIR/token. Remove DIR/token before running it again.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

func main() {
	serve := flag.String("serve", "", "only run the Entra stand-in, writing its files to this `directory`")
	program := flag.String("program", "", "`path` of the azure-rest-api-token binary to run (default: build it)")
	lifetime := flag.Duration("token-lifetime", 0, "with -serve: issue tokens valid for this `duration` (default: Entra's usual, about an hour)")
	flag.Parse()
	var err error
	if *serve != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = serveOnly(ctx, *serve, *lifetime)
		stop()
	} else {
		err = demo(*program)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// setUp starts the stand-in and writes into dir what a user of the program has: the CA to trust
// (ca.pem) and a service principal file (serviceprincipal.json, mode 0600).
func setUp(dir string) (*entratest.Server, error) {
	srv, err := entratest.NewServer()
	if err != nil {
		return nil, err
	}
	ca, err := entratest.CAPEM()
	if err != nil {
		srv.Close()
		return nil, err
	}
	sp, _ := json.MarshalIndent(map[string]string{
		"appId":       entratest.DefaultClientID,
		"displayName": entratest.DefaultDisplayName,
		"password":    entratest.DefaultSecret,
		"tenant":      entratest.DefaultTenantID,
	}, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), ca, 0o644); err != nil {
		srv.Close()
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "serviceprincipal.json"), append(sp, '\n'), 0o600); err != nil {
		srv.Close()
		return nil, err
	}
	return srv, nil
}

// serveOnly runs the stand-in with its files in dir until ctx is done, issuing tokens valid for
// lifetime (0: the stand-in's default).
func serveOnly(ctx context.Context, dir string, lifetime time.Duration) error {
	srv, err := setUp(dir)
	if err != nil {
		return err
	}
	defer srv.Close()
	if lifetime != 0 {
		srv.TokenLifetime = lifetime
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "env"), []byte(envFile(dir, srv.URL)), 0o644); err != nil {
		return err
	}
	imds, err := serveManagedIdentity(dir)
	if err != nil {
		return err
	}
	defer imds.Close()
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		return err
	}
	fmt.Printf("Entra stand-in serving at %s; files in %s; stop with SIGTERM\n", srv.URL, dir)
	<-ctx.Done()
	for _, r := range srv.Requests() {
		fmt.Printf("received %s %s (client_id %q, resource %q)\n", r.Method, r.Path, r.Form.Get("client_id"), r.Form.Get("resource"))
	}
	return nil
}

// envFile returns the text of DIR/env for the stand-in at authority with its files in dir, an absolute
// path: one "export NAME='value'" line per variable, single-quoted for any shell.
func envFile(dir, authority string) string {
	var b strings.Builder
	for _, kv := range [][2]string{
		{"ENTRA_SERVICE_PRINCIPAL", filepath.Join(dir, "serviceprincipal.json")},
		{"AZURE_RESOURCE", entratest.PrometheusResource},
		{"BEARER_TOKEN_FILE", filepath.Join(dir, "token")},
		{"AZURE_AUTHORITY_HOST", authority},
		{"SSL_CERT_FILE", filepath.Join(dir, "ca.pem")},
	} {
		fmt.Fprintf(&b, "export %s='%s'\n", kv[0], strings.ReplaceAll(kv[1], "'", `'\''`))
	}
	return b.String()
}

func demo(program string) error {
	dir, err := os.MkdirTemp("", "azure-rest-api-token-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := setUp(dir)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("1. Entra ID stand-in listening at %s (tenant %s)\n", srv.URL, srv.TenantID)
	fmt.Printf("2. service principal file %s, as \"az ad sp create-for-rbac\" prints it\n", filepath.Join(dir, "serviceprincipal.json"))

	if program == "" {
		program = filepath.Join(dir, "azure-rest-api-token")
		fmt.Println("3. building the program: go build -o", program, "github.com/densify-dev/azure-rest-api-token")
		build := exec.Command("go", "build", "-o", program, "github.com/densify-dev/azure-rest-api-token")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building the program: %w", err)
		}
	} else {
		fmt.Println("3. using the program", program)
	}

	tokenDir := filepath.Join(dir, "token") // the emptyDir volume
	if err := os.Mkdir(tokenDir, 0o755); err != nil {
		return err
	}
	tokenFile := filepath.Join(tokenDir, "token")
	env := []string{
		"ENTRA_SERVICE_PRINCIPAL=" + filepath.Join(dir, "serviceprincipal.json"),
		"AZURE_RESOURCE=" + entratest.PrometheusResource,
		"BEARER_TOKEN_FILE=" + tokenFile,
		"AZURE_AUTHORITY_HOST=" + srv.URL,
		"SSL_CERT_FILE=" + filepath.Join(dir, "ca.pem"),
	}
	fmt.Println("4. running it with this environment:")
	for _, e := range env {
		fmt.Println("     " + e)
	}
	cmd := exec.Command(program)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("running %s: %w", program, err)
	}

	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	info, err := os.Stat(tokenFile)
	if err != nil {
		return err
	}
	fmt.Printf("5. the token file %s: mode %v, %d bytes, %d HTTPS request(s) made\n", tokenFile, info.Mode()&fs.ModePerm, len(token), len(srv.Requests()))
	fmt.Printf("     %.40s… (a stand-in token, not an Azure one)\n", token)
	parsed, err := jwt.ParseSigned(string(token), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return fmt.Errorf("decoding the token: %w", err)
	}
	var claims map[string]any
	if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil {
		return fmt.Errorf("decoding the token: %w", err)
	}
	pretty, _ := json.MarshalIndent(claims, "     ", "  ")
	fmt.Printf("6. its claims, decoded:\n     %s\n", pretty)
	if err := managedIdentityDemo(program, dir); err != nil {
		return err
	}
	fmt.Println("Against Azure, set the same variables without AZURE_AUTHORITY_HOST and SSL_CERT_FILE: see README.md.")
	return nil
}
