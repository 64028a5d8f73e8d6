// Command azure-rest-api-token gets an OAuth 2.0 access token from Microsoft Entra ID for a service
// principal (the client credentials grant) or from the Azure host's managed identity, checks that the
// token is for the requested Azure resource, and writes it to a file. It is meant to run as a
// Kubernetes init container that leaves the token on an emptyDir volume for the pod's main container,
// which sends it as "Authorization: Bearer <token>" to an Azure REST API such as Azure Monitor managed
// Prometheus. With BEARER_TOKEN_REFRESH=true it is instead a
// native sidecar that keeps the file fresh for pods that outlive a token.
//
// Usage:
//
//	azure-rest-api-token [-check | -version | -help]
//
// All configuration comes from the environment. -check checks the token file, for an exec probe (see
// below); -version prints the version; -help prints this manual.
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
//     sets them;
//   - managed identity: ENTRA_MANAGED_IDENTITY names the host's identity to use, and the host's
//     identity endpoint hands out the token, with no secret at all (below).
//
// Two credentials configured at once (a secret and a certificate, a service principal file and a
// federated token, managed identity and either) is an error, not a guess. Managed identity is never
// chosen unless ENTRA_MANAGED_IDENTITY says so, and never probed. AZURE_CLIENT_SECRET (azidentity's
// environment credential) is not read: set without ENTRA_SERVICE_PRINCIPAL it is an error that says to
// put the secret in a service principal file.
//
// A set variable starting with BEARER_TOKEN_ or ENTRA_ that is not one of those below draws a warning
// naming the closest one. The start-up log line gives the mode (one-shot or refresh) and whether a file
// at BEARER_TOKEN_FILE is replaced.
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
//	ENTRA_MANAGED_IDENTITY         managed identity: "system" for the host's system-assigned identity,
//	                               or a user-assigned one as "client_id=<GUID>", "object_id=<GUID>"
//	                               or "resource_id=/subscriptions/<GUID>/resourceGroups/<group>/
//	                               providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>".
//	                               AZURE_CLIENT_ID never selects a managed identity: set with
//	                               ENTRA_MANAGED_IDENTITY, it is an error.
//	AZURE_POD_IDENTITY_AUTHORITY_HOST  managed identity on IMDS: scheme://host[:port] of IMDS instead of
//	                               http://169.254.169.254 (a test stand-in; the Azure SDKs' name);
//	                               /metadata/identity/oauth2/token is appended. Named on the start-up
//	                               line when set.
//
// Managed identity endpoints, detected from the variables the platform sets, in MSAL Go's order, never
// by probing: IDENTITY_ENDPOINT, IDENTITY_HEADER and IDENTITY_SERVER_THUMBPRINT: Service Fabric
// (https, its certificate pinned by that SHA-1 thumbprint; system-assigned only); IDENTITY_ENDPOINT and
// IDENTITY_HEADER: App Service, Functions and Container Apps; MSI_ENDPOINT (with MSI_SECRET, Azure
// Machine Learning; without, Cloud Shell): refused as not supported here; IDENTITY_ENDPOINT and
// IMDS_ENDPOINT, or the Azure Arc agent installed (/opt/azcmagent/bin/himds): Azure Arc (Linux,
// system-assigned only); otherwise IMDS, the Azure Instance Metadata Service of a VM or scale set, AKS
// nodes included. The start-up line names the source.
//
// Required:
//
//	AZURE_RESOURCE           the resource the token is for (App ID URI or application ID), sent to
//	                         Entra exactly as given, e.g. https://prometheus.monitor.azure.com.
//	                         A v2 scope ending in "/.default" is refused.
//	BEARER_TOKEN_FILE        path of the token file to write, in an existing directory. Nothing may
//	                         exist at that path yet: not a file, directory or symbolic link; with
//	                         BEARER_TOKEN_FILE_REPLACE or BEARER_TOKEN_REFRESH, a regular file is replaced.
//
// Optional:
//
//	AZURE_AUTHORITY_HOST     Entra authority, https only (default https://login.microsoftonline.com/;
//	                         e.g. https://login.microsoftonline.us/ for Azure Government).
//	BEARER_TOKEN_AUDIENCE    the "aud" claim the token must carry (default AZURE_RESOURCE); for APIs that
//	                         issue v2.0 tokens whose audience is the API's client ID.
//	BEARER_TOKEN_FILE_MODE   octal permission bits of the token file (default 0644, like Kubernetes'
//	                         Secret volumes, so that a main container running as another user can read it).
//	BEARER_TOKEN_TIMEOUT     deadline for the whole run, a Go duration (default 2m), whatever it waits
//	                         on, a hung file system included; in refresh mode, for the first token and
//	                         for each renewal.
//	BEARER_TOKEN_REFRESH     "true": refresh mode, below; "false" or unset: get one token and exit.
//	BEARER_TOKEN_FILE_REPLACE  "true": replace a regular file at BEARER_TOKEN_FILE, atomically, instead
//	                         of failing (for an init container re-run on a surviving emptyDir); "false"
//	                         or unset: fail if anything is there. Refresh mode always replaces.
//	BEARER_TOKEN_MIN_VALIDITY  for -check: how long the token must still be valid, a Go duration
//	                         (default 5m).
//	BEARER_TOKEN_FORMAT      the token file's format (below): "token" (default), "header" or "json".
//	BEARER_TOKEN_RESOURCES   more tokens from the same credential, each in a file of its own (below):
//	                         entries "resource=path" or "resource=path,format", separated by white
//	                         space, e.g. https://management.azure.com/=/var/run/azure-token/arm,json.
//	BEARER_TOKEN_METRICS_ADDR  refresh mode: host:port, e.g. :9464, on which to serve Prometheus metrics
//	                         at /metrics (below); unset: no listener at all.
//	LOG_FORMAT               "text" (default) or "json": the log/slog handler used for standard output.
//	HTTPS_PROXY, NO_PROXY    proxy settings, as every Go program reads them: upper case first, else
//	                         https_proxy, no_proxy; a value without a scheme means http://; loopback
//	                         addresses are never proxied. The start-up log line names the proxy in use.
//	                         They apply to Entra (every credential but managed identity) and to
//	                         managed identity's Service Fabric endpoint (and App Service's, which is
//	                         on the loopback address); never to IMDS or the Azure Arc agent, which
//	                         are always reached directly.
//	                         A value Go could not use (e.g. a password with an unescaped "%": write
//	                         %25) is an error, not ignored: Go would connect around the proxy.
//	                         HTTP_PROXY and http_proxy are checked the same way.
//	SSL_CERT_FILE            a PEM bundle of CA certificates to trust (a TLS-inspecting proxy, or a test
//	                         stand-in for Entra). Go reads it instead of the system's bundle file, but
//	                         on Linux still reads every file in /etc/ssl/certs and /etc/pki/tls/certs:
//	                         it adds CAs.
//	SSL_CERT_DIR             ":"-separated directories of CA certificates read instead of
//	                         those; an empty one makes SSL_CERT_FILE the only CAs trusted.
//	                         Either, when set, must name what exists, or the run fails.
//
// A run that succeeds at once sends exactly one request. With a client secret it is a form-encoded POST to the v1 token
// endpoint {AZURE_AUTHORITY_HOST}/{tenant}/oauth2/token with the resource; with a certificate (a PS256
// client assertion signed with its key) or a federated token (sent as the client assertion), a POST to
// the v2 endpoint {AZURE_AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token with the scope AZURE_RESOURCE + "/.default".
// Network errors, HTTP 408, 429, 500, 502, 503 and 504 and the error "temporarily_unavailable" are retried
// for as long as BEARER_TOKEN_TIMEOUT leaves time for another attempt, with no fixed count: each wait is
// random, so that pods started together do not come back together, from 1 to 3 seconds after the first
// failure, growing to at most 30 (decorrelated jitter); a Retry-After is a floor, and the wait is
// Retry-After plus up to twice as much again at random for the first three failures, up to four times
// after the fourth, and from the fifth on half to all of the time left before BEARER_TOKEN_TIMEOUT (a
// crowd that large is more than the tenant admits: one or two more attempts, and the kubelet's restart,
// do better than many). A refresh-mode sidecar that starts from its own token file, expired or within
// 5 minutes of it, counts its first failure as the fifth. A server asking to wait past the deadline
// ends the run at once. Each failure is one log line; the final error says why the last attempt
// failed. SIGTERM and SIGINT stop the run at once.
//
// With managed identity the request is a GET to the host's endpoint with api-version, resource
// (AZURE_RESOURCE, exactly as given) and, for a user-assigned identity, its selector in the endpoint's
// own spelling: IMDS, GET {AZURE_POD_IDENTITY_AUTHORITY_HOST or http://169.254.169.254}
// /metadata/identity/oauth2/token?api-version=2018-02-01, header Metadata: true, client_id, object_id
// or msi_res_id; App Service, GET IDENTITY_ENDPOINT?api-version=2019-08-01, header X-IDENTITY-HEADER,
// client_id, principal_id or mi_res_id; Service Fabric, GET IDENTITY_ENDPOINT?api-version=
// 2019-07-01-preview, header Secret; Azure Arc, GET IDENTITY_ENDPOINT (default
// http://127.0.0.1:40342/metadata/identity/oauth2/token)?api-version=2020-06-01, header Metadata: true,
// twice: the agent answers the first with 401 and "WWW-Authenticate: Basic realm=<key file>", and the
// second carries the key file's content as "Authorization: Basic". The key file is read only if it is a
// regular .key file directly in /var/opt/azcmagent/tokens, named with letters, digits, "-" and "_" (at
// most 255 bytes), of at most 4096 bytes, opened without blocking, and is never printed; a challenge
// naming any other path is refused, naming it, and nothing is read or sent (the program must
// run as root or in the himds group to read it). A run that succeeds at once sends one request (Azure
// Arc: two). IMDS answers are retried as Microsoft documents: network errors, 404 (an identity not yet
// assigned), 410 (IMDS updating, up to 70 seconds), 429 and every 5xx but 509, never 400, 401 or 403,
// with the same random waits as Entra's answers (so that pods that restart together spread over the
// node's IMDS budget of 20 requests per second), within BEARER_TOKEN_TIMEOUT; the other endpoints'
// answers as Entra's. The
// response's expires_in and expires_on (strings, numbers or dates, depending on the host) are not
// read: the token's own "exp" counts. The identity endpoints' IDENTITY_HEADER is never printed.
//
// Before writing, the token is decoded (not verified: it is meant for another API) and its "aud" claim must
// equal BEARER_TOKEN_AUDIENCE, give or take one trailing slash, its "exp" must lie in the future, and its
// "nbf", if any, at most 5 minutes ahead (Entra's own backdating; a later one means a clock far off).
//
// The token file holds, in the format "token" (the default), exactly the access token, with no trailing
// newline; in "header", the line "Authorization: Bearer <token>" and a newline, for curl -H @file; in
// "json", {"access_token":…,"token_type":"Bearer","expires_on":…,"resource":…} and a newline, with
// expires_on the token's "exp" as a number of Unix seconds, as "az account get-access-token" prints it.
// It has mode BEARER_TOKEN_FILE_MODE whatever the umask. It appears whole or not at all: the token is written to a temporary file in the same
// directory, flushed to disk, and then linked to its final name, which fails if anything is there; or,
// with BEARER_TOKEN_FILE_REPLACE or in refresh mode, renamed over it (rename(2): a reader finds the old
// token or the new, never a missing, empty or partial file). On Linux the temporary file has no name
// until then (O_TMPFILE), so that even a killed run leaves no copy of the token, but for the instant
// before a rename, which needs a name; file systems without O_TMPFILE get a named one. Before any
// request the program publishes an empty probe file the same way, so that a file system without hard
// links (vfat, exFAT, some FUSE mounts) fails the run at once. A failed or interrupted run leaves no
// file behind.
//
// Refresh mode (BEARER_TOKEN_REFRESH=true), for a Kubernetes native sidecar (an init container with
// restartPolicy: Always): the first token is obtained, checked and written as above, with the same
// messages and exit statuses, a regular file at the path replaced; but a token file this program wrote
// (a regular file with the process's owner and BEARER_TOKEN_FILE_MODE) holding a token for the same
// audience, tenant and client ID, valid for more than 5 minutes, is kept with no request, as a sidecar
// restarted in its pod finds it; the log says whether the file was kept or replaced, and why. The
// program then stays, and renews the token at a random point between 25% and 75% of its lifetime, as
// measured from when it was received (so that pods started together do not renew in step: a rollout's
// wave dissolves within a lifetime), a lifetime of more than 24 hours counting as 24 hours, at the
// latest 5 minutes before it expires, and never sooner than 30 seconds after the last one. Every renewal
// reads the credential files again (a Secret or projected token rotated by the kubelet is used at once)
// and sends one request; the new token replaces the file by rename, unless it expires sooner than the
// one in the file, which is then kept.
// Managed identity tokens live about 24 hours and the platform caches them: a renewal may get the
// same token back, with the same expiry; that is no failure (its log line says same_token=true), and
// when the floor would put the next renewal past that expiry it comes at half of what is left instead
// (at least a second apart), so that one token lifetime costs about ten requests, about twenty where
// the endpoint keeps handing out a token until its last seconds.
// A renewal that fails for any reason, 400 and 401 included, leaves
// the current token in the file and is retried after the longest of: a random wait from 10 seconds,
// growing to at most 5 minutes; a Retry-After plus up to twice as much again; and a quarter to a half of
// the time the current token has left (a pod whose token is valid for long yields to pods that have
// none). But however long a Retry-After, one last attempt comes 1 minute before the token expires.
// A sidecar that a tenant throttled lately (a renewal refused with 429 Too Many Requests in one of its
// last three renewal cycles, a first token refused with 429 four times or more, or a start from its
// own token file, expired or within 5 minutes of it) renews late, at 75% to 95% of the time to 5
// minutes before expiry, and does not retry a renewal refused with 429 (an outage's 503 it does): it
// logs so, keeps the token in the file until it expires, and exits with status 10, leaving the
// tenant's tokens to pods that have none. Each
// renewal is one log line with the new expiry and the next renewal; each failure one line with the
// reason and when the current token expires. A renewal that has not finished within
// BEARER_TOKEN_TIMEOUT (a credential file on a hung mount) fails and is retried the same way. When the
// current token expires without a renewal the program exits with status 10. SIGTERM and SIGINT make it
// exit 0 at once, even during a request, a wait or a renewal that hangs on a file system call, leaving
// the token file in place, and further signals change nothing; before the first token is written they
// stop it as they stop a one-shot run.
//
// Several resources (BEARER_TOKEN_RESOURCES): one process, one credential, a token per resource. AZURE_RESOURCE
// and BEARER_TOKEN_FILE (with BEARER_TOKEN_AUDIENCE and BEARER_TOKEN_FORMAT) are the first; each entry
// adds a resource, its file (the rules of BEARER_TOKEN_FILE; no two tokens share one) and its format
// (default "token"); its audience is the resource itself. A resource holds no "=" and a path no comma
// or white space. A malformed entry is exit 1, naming it. Every file's place is checked before the
// first request; the first tokens are requested one after the other, and any two requests are at least
// a second apart. A one-shot run that fails for one resource removes the files it wrote before (but
// those it replaced). In refresh mode each token is renewed on its own schedule, exactly as above, and
// a failure for one is logged, naming its file, and retried for that one alone; the program exits 10
// when one of its tokens expires without a renewal, naming that token's file.
//
// Metrics (BEARER_TOKEN_METRICS_ADDR, refresh mode only): the port is opened before any request, and
// one that cannot be (in use, a wrong address) is exit 1. GET or HEAD of /metrics returns the Prometheus
// text format: per resource and file, the token's expiry and issue time ("exp", "iat") and the time of
// the last successful renewal, in Unix seconds; renewals by result; token requests by HTTP status class,
// the retries among them and the 429s; and build information (version, commit, credential kind, mode). No
// secret, token or client ID. At most 4 connections are served at once, each with 10-second read and
// write timeouts; any other path is 404, any other method 405.
//
// -check, for exec probes (startupProbe, livenessProbe, readinessProbe): reads BEARER_TOKEN_FILE,
// AZURE_RESOURCE or BEARER_TOKEN_AUDIENCE, BEARER_TOKEN_MIN_VALIDITY, BEARER_TOKEN_FORMAT and
// BEARER_TOKEN_RESOURCES, and each token file, never the network or a credential. It exits 0 if each
// file is a regular file holding, in its format, one JWT whose "aud" is its audience (the rule above)
// and whose "exp" is more than BEARER_TOKEN_MIN_VALIDITY away. It prints one line per file: until when
// its token is valid, or why it fails (missing, empty, not a JWT, wrong audience, not valid yet,
// expires in …), and then exits 3, or 1 for a configuration error. It writes no termination message.
//
// The log goes to standard output, one line per event; nothing goes to standard error. The secret and
// the token are never logged. On failure the reason is also written to /dev/termination-log when that
// file exists and is writable, so that "kubectl describe pod" shows it: one line, with control
// characters escaped (\n, \x1b), since it may quote a server's certificate or a proxy's answer.
//
// -version prints the version as the image's tag has it, without a "v" (1.2.3 for the release v1.2.3,
// whose image is docker.io/densify/azure-rest-api-token:1.2.3), and the commit.
//
// Exit statuses:
//
//	0   the token was obtained, checked and written (refresh mode: and it was then stopped by SIGTERM
//	    or SIGINT); -check: the token file passed
//	1   configuration: an environment variable is missing or invalid, the token file already exists,
//	    or a credential file (service principal, certificate, federated token, Azure Arc key) cannot
//	    be read, or a file system call did not return before the deadline or a signal (a hung FUSE
//	    or network mount)
//	2   the service principal file, the certificate or the federated token is not valid (a placeholder
//	    or an appId that is not a GUID included)
//	3   -check: the token file is missing, not a regular file, empty, not a JWT, for another audience,
//	    or expires within BEARER_TOKEN_MIN_VALIDITY
//	10  the token request failed: Entra or the managed identity endpoint refused it, an HTTP or
//	    network error, or retries ran out; in refresh mode also: the current token expired without a
//	    renewal
//	11  writing the token file failed
//	12  the token was rejected by the checks (managed identity: also a token for another identity than
//	    the user-assigned one selected)
//
// SIGTERM or SIGINT before the token was written gives the status of the step it stopped: 10 in the
// request or a wait between retries, 1 while reading the environment or credentials or stuck in a file
// system call, 11 while writing. -check with -version is an error (1).
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Error text, everywhere in this program: lowercase, no trailing period, paths and values quoted with %q,
// each layer names its operation and wraps with %w. Error text never holds the client secret, the access
// token, or a response body that might hold either; Entra's errors are reduced to their documented fields.

const synopsis = "usage: azure-rest-api-token [-check | -version | -help]"

func main() {
	// The standard library's logger writes to standard error, outside the log's format; net/http uses
	// it for a server's stray bytes, which might hold a token. Nothing in this program uses it.
	log.SetOutput(io.Discard)
	// The handler stays until the process exits: once stopping, further signals (a burst of SIGTERMs
	// from a kubelet and a container runtime) change nothing, where with the default action restored
	// one arriving after run returned would kill the process with status 143.
	ctx, _ := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, variableNames(os.Environ()), os.Stdout)
	if err != nil {
		if _, probe := errors.AsType[*checkFailure](err); !probe {
			writeTerminationMessage(terminationLog, err)
		}
		os.Exit(exitStatus(err))
	}
}

// variableNames returns the names of environ's "NAME=value" entries, in order.
func variableNames(environ []string) []string {
	names := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		names = append(names, name)
	}
	return names
}

// run is the whole program: args are the command line (args[0] is the program name), getenv the only
// source of configuration, names the names of the variables set in the environment (for warnings about
// unknown ones: getenv cannot list them), stdout where the manual, the version, -check's line or the
// log goes. It
// returns nil when the token file was written (in refresh mode: when it stopped on ctx's end after
// that), or when -check passed; and otherwise an error whose exit status [exitStatus] finds, after
// logging it.
func run(ctx context.Context, args []string, getenv func(string) string, names []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("azure-rest-api-token", flag.ContinueOnError)
	flags.SetOutput(stdout)
	flags.Usage = func() {} // -help prints the manual below; an error, only the synopsis
	showVersion := flags.Bool("version", false, "print the version and exit")
	check := flags.Bool("check", false, "check the token file, for an exec probe, and exit")
	if err := flags.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, manual())
			return nil
		}
		fmt.Fprintln(stdout, synopsis)
		return withExit(exitConfig, fmt.Errorf("command line: %w", err))
	}
	if flags.NArg() > 0 {
		err := fmt.Errorf("command line: unexpected argument %q: configuration comes from the environment (see -help)", flags.Arg(0))
		fmt.Fprintf(stdout, "azure-rest-api-token: %s\n%s\n", escapeControl(err.Error()), synopsis)
		return withExit(exitConfig, err)
	}
	if *showVersion && *check {
		err := errors.New("command line: -check and -version are two modes: give one")
		fmt.Fprintf(stdout, "azure-rest-api-token: %s\n%s\n", err, synopsis)
		return withExit(exitConfig, err)
	}
	if *showVersion {
		fmt.Fprintln(stdout, "azure-rest-api-token", programVersion())
		return nil
	}
	if *check {
		return runCheck(getenv, stdout, time.Now())
	}

	out := &closableWriter{w: stdout}
	defer out.close() // a job abandoned by untilDone writes no more
	log, logErr := newLogger(out, getenv("LOG_FORMAT"))
	err := logErr
	for _, w := range unknownVariables(names) {
		log.Warn(w)
	}
	if err == nil {
		err = untilDone(ctx, func() error { return getToken(ctx, getenv, log) })
	}
	if err != nil {
		log.Error("azure-rest-api-token failed", "error", err.Error(), "exit_status", exitStatus(err))
	}
	return err
}

// closableWriter passes writes on to w until close; then it drops them. Its writes are serialised.
type closableWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (c *closableWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return len(p), nil
	}
	return c.w.Write(p)
}

func (c *closableWriter) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
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
