// Command azure-rest-api-token gets an OAuth 2.0 access token from Microsoft Entra ID for a service
// principal (the client credentials grant), checks that the token is for the requested Azure resource,
// and writes it to a file. It is meant to run as a Kubernetes init container that leaves the token on an
// emptyDir volume for the pod's main container, which sends it as "Authorization: Bearer <token>" to an
// Azure REST API such as Azure Monitor managed Prometheus.
//
// Usage:
//
//	azure-rest-api-token [-version | -help]
//
// All configuration comes from the environment.
//
// The credential is one of:
//
//   - a client secret: ENTRA_SERVICE_PRINCIPAL names a service principal file whose "password" is the
//     secret;
//   - a certificate: the service principal file has "password": null, as with --create-cert, and the
//     certificate and its key are in AZURE_CLIENT_CERTIFICATE_PATH or else, if readable here, in the
//     file's "fileWithCertAndPrivateKey";
//   - workload identity federation: ENTRA_SERVICE_PRINCIPAL is unset, and AZURE_CLIENT_ID,
//     AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE are set, as the Azure Workload Identity webhook
//     sets them.
//
// Two credentials configured at once (a secret and a certificate, or a service principal file and a
// federated token) is an error, not a guess.
//
// Credential variables:
//
//	ENTRA_SERVICE_PRINCIPAL        path of the service principal file, JSON as printed by
//	                               "az ad sp create-for-rbac": {"appId", "displayName", "password",
//	                               "tenant"}, all four required; other attributes are ignored.
//	                               Symbolic links (a Secret volume) are followed; at most 1 MiB is read.
//	AZURE_CLIENT_CERTIFICATE_PATH  PEM file with the certificate (and any chain) and its unencrypted
//	                               RSA private key (PKCS#1 or PKCS#8), 2048 bits or more.
//	AZURE_CLIENT_ID                the application's client ID (workload identity).
//	AZURE_TENANT_ID                its tenant ID (workload identity).
//	AZURE_FEDERATED_TOKEN_FILE     the projected service account token (workload identity), read
//	                               again for every attempt, since the kubelet rotates it.
//
// Required:
//
//	AZURE_RESOURCE           the resource the token is for (App ID URI or application ID), sent to
//	                         Entra exactly as given, e.g. https://prometheus.monitor.azure.com.
//	                         A v2 scope ending in "/.default" is refused.
//	BEARER_TOKEN_FILE        path of the token file to write. Nothing may exist at that path yet:
//	                         not a file, directory or symbolic link.
//
// Optional:
//
//	AZURE_AUTHORITY_HOST     Entra authority, https only (default https://login.microsoftonline.com/;
//	                         e.g. https://login.microsoftonline.us/ for Azure Government).
//	BEARER_TOKEN_AUDIENCE    the "aud" claim the token must carry (default AZURE_RESOURCE); for APIs that
//	                         issue v2.0 tokens whose audience is the API's client ID.
//	BEARER_TOKEN_FILE_MODE   octal permission bits of the token file (default 0644, like Kubernetes'
//	                         Secret volumes, so that a main container running as another user can read it).
//	BEARER_TOKEN_TIMEOUT     deadline for the whole run, a Go duration (default 2m).
//	LOG_FORMAT               "text" (default) or "json": the log/slog handler used for standard output.
//	HTTPS_PROXY, NO_PROXY    proxy settings, as every Go program reads them.
//	SSL_CERT_FILE            a PEM bundle of CA certificates to trust instead of the system's
//	SSL_CERT_DIR             (a TLS-inspecting proxy, or a test stand-in for Entra).
//
// A run that succeeds at once sends exactly one request. With a client secret it is a form-encoded POST to the v1 token
// endpoint {AZURE_AUTHORITY_HOST}/{tenant}/oauth2/token with the resource; with a certificate (a PS256
// client assertion signed with its key) or a federated token (sent as the client assertion), a POST to
// the v2 endpoint {AZURE_AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token with the scope AZURE_RESOURCE + "/.default".
// Network errors, HTTP 408, 429, 500, 502, 503 and 504 and the error "temporarily_unavailable" are retried,
// 4 attempts in all, with exponential backoff from about one second and any Retry-After the server sends,
// within BEARER_TOKEN_TIMEOUT. SIGTERM and SIGINT stop the run at once.
//
// Before writing, the token is decoded (not verified: it is meant for another API) and its "aud" claim must
// equal BEARER_TOKEN_AUDIENCE, give or take one trailing slash, and its "exp" must lie in the future.
//
// The token file holds exactly the access token, with no trailing newline, with mode BEARER_TOKEN_FILE_MODE
// whatever the umask. It appears whole or not at all: the token is written to a temporary file in the same
// directory and then linked to its final name. A failed or interrupted run leaves no file behind.
//
// The log goes to standard output, one line per event. The secret and the token are never logged. On
// failure the reason is also written to /dev/termination-log when that file exists and is writable, so
// that "kubectl describe pod" shows it.
//
// -version prints the version as the image's tag has it, without a "v" (1.2.3 for the release v1.2.3,
// whose image is docker.io/densify/azure-rest-api-token:1.2.3), and the commit.
//
// Exit statuses:
//
//	0   the token was obtained, checked and written
//	1   configuration: an environment variable is missing or invalid, the token file already exists,
//	    or a credential file (service principal, certificate, federated token) cannot be read
//	2   the service principal file or the certificate is not valid
//	10  the token request failed: Entra refused it, an HTTP or network error, or retries ran out
//	11  writing the token file failed
//	12  the token was rejected by the checks
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

// Error text, everywhere in this program: lowercase, no trailing period, paths and values quoted with %q,
// each layer names its operation and wraps with %w. Error text never holds the client secret, the access
// token, or a response body that might hold either; Entra's errors are reduced to their documented fields.

// version and commit identify the build. Release builds set them with
// -ldflags "-X main.version=1.2.3 -X main.commit=<full git sha>" (GoReleaser's {{.Version}}, the image
// tag: no "v"); otherwise version comes from the module's build information (see [programVersion]).
var (
	version = ""
	commit  = ""
)

// Exit statuses, documented in the package comment and in README.md. They match the shell script this
// program replaces.
const (
	exitConfig       = 1
	exitCredential   = 2
	exitRequest      = 10
	exitWrite        = 11
	exitTokenInvalid = 12
)

const synopsis = "usage: azure-rest-api-token [-version | -help]"

// terminationLog is where Kubernetes reads a container's termination message by default
// (https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/).
const terminationLog = "/dev/termination-log"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		writeTerminationMessage(terminationLog, err)
		os.Exit(exitStatus(err))
	}
}

// run is the whole program: args are the command line (args[0] is the program name), getenv the only
// source of configuration, stdout where the manual, the version or the log goes. It returns nil when the
// token file was written, and otherwise an error whose exit status [exitStatus] finds, after logging it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	flags := flag.NewFlagSet("azure-rest-api-token", flag.ContinueOnError)
	flags.SetOutput(stdout)
	flags.Usage = func() {} // -help prints the manual below; an error, only the synopsis
	showVersion := flags.Bool("version", false, "print the version and exit")
	if err := flags.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, manual())
			return nil
		}
		fmt.Fprintln(stdout, synopsis)
		return withExit(exitConfig, fmt.Errorf("command line: %w", err))
	}
	if flags.NArg() > 0 {
		fmt.Fprintln(stdout, synopsis)
		return withExit(exitConfig, fmt.Errorf("command line: unexpected argument %q: configuration comes from the environment", flags.Arg(0)))
	}
	if *showVersion {
		fmt.Fprintln(stdout, "azure-rest-api-token", programVersion())
		return nil
	}

	log, logErr := newLogger(stdout, getenv("LOG_FORMAT"))
	err := logErr
	if err == nil {
		err = getToken(ctx, getenv, log)
	}
	if err != nil {
		log.Error("azure-rest-api-token failed", "error", err.Error(), "exit_status", exitStatus(err))
	}
	return err
}

// newLogger returns the log/slog logger writing to w in format "text" (also for "") or "json". For any
// other format it returns a text logger and an error with exit status 1.
func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return slog.New(slog.NewTextHandler(w, nil)),
		withExit(exitConfig, fmt.Errorf("LOG_FORMAT %q: want \"text\" or \"json\"", format))
}

// exitError gives err the exit status code. run's errors carry one; anything else exits with status 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withExit returns err carrying exit status code, or nil if err is nil. An err that already carries a
// status keeps it: the innermost cause knows best.
func withExit(code int, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*exitError](err); ok {
		return err
	}
	return &exitError{code: code, err: err}
}

// exitStatus returns the exit status err carries: 0 for nil, 1 when it carries none.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	return exitConfig
}

//go:embed main.go
var mainSource string

// manual returns the package comment above, the one source of the manual, without its comment markers.
func manual() string {
	var b strings.Builder
	for line := range strings.Lines(mainSource) {
		if !strings.HasPrefix(line, "//") {
			break
		}
		line = strings.TrimPrefix(line, "//")
		line = strings.TrimPrefix(line, " ")
		b.WriteString(line)
	}
	return b.String()
}

// writeTerminationMessage writes err's text to path when path exists and is writable, and does nothing
// otherwise: outside Kubernetes there is no such file, and the log already has the reason. Kubernetes
// keeps at most 4096 bytes of it.
func writeTerminationMessage(path string, err error) {
	f, openErr := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if openErr != nil {
		return
	}
	msg := "azure-rest-api-token: " + err.Error()
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	_, _ = io.WriteString(f, msg)
	_ = f.Close()
}

// programVersion returns the version stamped with -ldflags -X, else the module version from the build
// information ("(devel)" for a plain go build), followed by the commit when one was stamped.
func programVersion() string {
	v := version
	if v == "" {
		v = buildInfoVersion()
	}
	if commit != "" {
		v += " (commit " + commit + ")"
	}
	return v
}

// buildInfoVersion returns the main module's version from the binary's build information without its
// "v", as release builds and image tags spell it: 1.2.3 for "go install module@v1.2.3"; "(devel)" for
// a build in a work tree.
func buildInfoVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return strings.TrimPrefix(info.Main.Version, "v")
	}
	return "(devel)"
}
