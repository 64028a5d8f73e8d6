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
//	                               # only serve: create DIR, write the files below, then DIR/ready,
//	                               # and answer token requests, logging each, until SIGINT or SIGTERM;
//	                               # DIR/env-managed-identity does the same with an IMDS stand-in
//
// DIR/env is complete: ". DIR/env" exports every variable the program needs to get a token from the
// stand-in with a client secret (ENTRA_SERVICE_PRINCIPAL, AZURE_RESOURCE, BEARER_TOKEN_FILE=DIR/token,
// AZURE_AUTHORITY_HOST and SSL_CERT_FILE=DIR/ca.pem), so that sourcing it and running the program
// writes DIR/token. Remove DIR/token before running it again. DIR/env-certificate does the same with a
// certificate credential (DIR/serviceprincipal-cert.json with "password": null, DIR/cert.pem), and
// DIR/env-workload-identity with workload identity (AZURE_CLIENT_ID, AZURE_TENANT_ID and
// AZURE_FEDERATED_TOKEN_FILE=DIR/federated-token, a service account token valid for an hour). Each
// DIR/image*.env holds the same variables in the form of "docker run --env-file", for running the
// image against the stand-in, with DIR mounted at the same path; -serve prints the command.
package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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
		err = serveOnly(ctx, *serve, *lifetime, os.Stdout)
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

// image is the image -serve suggests running against the stand-in: the release the examples pin.
const image = "docker.io/densify/azure-rest-api-token:1.1.0"

// serveOnly runs the stand-in with its files in dir, which it creates, until ctx is done, issuing
// tokens valid for lifetime (0: the stand-in's default), and writes to out what it serves and each
// request as it is answered.
func serveOnly(ctx context.Context, dir string, lifetime time.Duration, out io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	srv, err := setUp(dir)
	if err != nil {
		return err
	}
	defer srv.Close()
	if lifetime != 0 {
		srv.TokenLifetime = lifetime
	}
	var mu sync.Mutex
	srv.Answered = func(r entratest.Request, status int) {
		mu.Lock()
		defer mu.Unlock()
		what := "resource " + strconv.Quote(r.Form.Get("resource"))
		if r.Form.Has("scope") {
			what = "scope " + strconv.Quote(r.Form.Get("scope"))
		}
		cred := "client secret"
		if r.Form.Has("client_assertion") {
			cred = "client assertion"
		}
		fmt.Fprintf(out, "%s answered %d to %s %s (client_id %q, %s, %s)\n",
			time.Now().UTC().Format(time.RFC3339), status, r.Method, r.Path, r.Form.Get("client_id"), what, cred)
	}
	if err := setUpOtherCredentials(srv, dir); err != nil {
		return err
	}
	for _, f := range []struct{ name, content string }{
		{"env", shellEnv(secretEnv(dir, srv.URL))},
		{"env-certificate", shellEnv(certificateEnv(dir, srv.URL))},
		{"env-workload-identity", shellEnv(workloadIdentityEnv(dir, srv.URL))},
		{"image.env", dockerEnv(secretEnv(dir, srv.URL))},
		{"image-certificate.env", dockerEnv(certificateEnv(dir, srv.URL))},
		{"image-workload-identity.env", dockerEnv(workloadIdentityEnv(dir, srv.URL))},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.content), 0o644); err != nil {
			return err
		}
	}
	imds, err := serveManagedIdentity(dir)
	if err != nil {
		return err
	}
	defer imds.Close()
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, `Entra stand-in serving at %[1]s; files in %[2]s; stop with SIGTERM or Ctrl-C.
Run the program against it (a client secret; env-certificate and env-workload-identity for the others):
  (. '%[2]s/env' && go run github.com/densify-dev/azure-rest-api-token)
Run the image against it, as you, so that it can read the files and write %[2]s/token
(image-certificate.env and image-workload-identity.env for the others):
  docker run --rm --network host --user "$(id -u):$(id -g)" -v '%[2]s:%[2]s' --env-file '%[2]s/image.env' %[3]s
Remove %[2]s/token before running either again.
`, srv.URL, dir, image)
	<-ctx.Done()
	return nil
}

// setUpOtherCredentials registers a certificate and a federated credential on the stand-in's app and
// writes what a user of each has: dir/cert.pem and dir/serviceprincipal-cert.json ("password": null),
// and dir/federated-token, a service account token from the issuer the federated credential trusts.
func setUpOtherCredentials(srv *entratest.Server, dir string) error {
	key, err := entratest.RSAKey(2048)
	if err != nil {
		return err
	}
	now := time.Now()
	cert, err := entratest.NewCertificate(key, now.Add(-time.Hour), now.Add(30*24*time.Hour))
	if err != nil {
		return err
	}
	token, err := entratest.ServiceAccountToken(nil)
	if err != nil {
		return err
	}
	app := srv.Apps[entratest.DefaultClientID]
	app.Certificates = append(app.Certificates, cert)
	app.Federated = append(app.Federated, entratest.FederatedCredential{
		Issuer: entratest.ServiceAccountIssuer, Subject: entratest.ServiceAccountSubject, Audience: entratest.TokenExchangeAudience})
	srv.Apps[entratest.DefaultClientID] = app
	pemData := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...)
	sp, _ := json.MarshalIndent(map[string]any{
		"appId":       entratest.DefaultClientID,
		"displayName": entratest.DefaultDisplayName,
		"password":    nil,
		"tenant":      entratest.DefaultTenantID,
	}, "", "  ")
	for _, f := range []struct {
		name string
		data []byte
	}{{"cert.pem", pemData}, {"serviceprincipal-cert.json", append(sp, '\n')}, {"federated-token", []byte(token)}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil { // as a Secret's key would be kept
			return err
		}
	}
	return nil
}

// secretEnv, certificateEnv and workloadIdentityEnv return the variables that get a token from the
// stand-in at authority, with its files in dir (an absolute path), with each credential.
func secretEnv(dir, authority string) [][2]string {
	return [][2]string{
		{"ENTRA_SERVICE_PRINCIPAL", filepath.Join(dir, "serviceprincipal.json")},
		{"AZURE_RESOURCE", entratest.PrometheusResource},
		{"BEARER_TOKEN_FILE", filepath.Join(dir, "token")},
		{"AZURE_AUTHORITY_HOST", authority},
		{"SSL_CERT_FILE", filepath.Join(dir, "ca.pem")},
	}
}

func certificateEnv(dir, authority string) [][2]string {
	env := secretEnv(dir, authority)
	env[0][1] = filepath.Join(dir, "serviceprincipal-cert.json")
	return append(env, [2]string{"AZURE_CLIENT_CERTIFICATE_PATH", filepath.Join(dir, "cert.pem")})
}

func workloadIdentityEnv(dir, authority string) [][2]string {
	return append([][2]string{
		{"AZURE_CLIENT_ID", entratest.DefaultClientID},
		{"AZURE_TENANT_ID", entratest.DefaultTenantID},
		{"AZURE_FEDERATED_TOKEN_FILE", filepath.Join(dir, "federated-token")},
	}, secretEnv(dir, authority)[1:]...)
}

// shellEnv returns one "export NAME='value'" line per variable, single-quoted for any shell.
func shellEnv(env [][2]string) string {
	var b strings.Builder
	for _, kv := range env {
		fmt.Fprintf(&b, "export %s='%s'\n", kv[0], strings.ReplaceAll(kv[1], "'", `'\''`))
	}
	return b.String()
}

// dockerEnv returns one NAME=value line per variable, as "docker run --env-file" reads them: no
// quoting, the value as it is to the end of the line.
func dockerEnv(env [][2]string) string {
	var b strings.Builder
	for _, kv := range env {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], kv[1])
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
