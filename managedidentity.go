package main

import (
	"context"
	"crypto/sha1" // #nosec: Service Fabric names its endpoint's certificate by its SHA-1 thumbprint
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/go-jose/go-jose/v4/jwt"
)

// Managed identity (ENTRA_MANAGED_IDENTITY): the Azure host's own identity endpoint hands out tokens
// with no secret at all. Which endpoint is detected from the platform's variables the way MSAL Go's
// managedidentity.GetSource does (github.com/AzureAD/microsoft-authentication-library-for-go,
// apps/managedidentity/managedidentity.go, v1.9.0), without probing: Service Fabric, App Service (and
// Functions, Container Apps), Azure ML and Cloud Shell (refused), Azure Arc, else IMDS. Each source
// builds the request its documentation gives (createIMDSAuthRequest, createAppServiceAuthRequest,
// createAzureArcAuthRequest, createServiceFabricAuthRequest there).

// Protocol constants of the managed identity endpoints (MSAL Go, above; IMDS:
// https://learn.microsoft.com/en-us/entra/identity/managed-identities-azure-resources/how-to-use-vm-token).
const (
	imdsTokenPath           = "/metadata/identity/oauth2/token"
	imdsAPIVersion          = "2018-02-01"
	appServiceAPIVersion    = "2019-08-01"
	arcAPIVersion           = "2020-06-01"
	arcDefaultEndpoint      = "http://127.0.0.1:40342/metadata/identity/oauth2/token"
	serviceFabricAPIVersion = "2019-07-01-preview"
	maxArcKeySize           = 4096 // bytes; MSAL Go refuses a larger key file
	maxArcKeyName           = 255  // bytes of the key file's name: NAME_MAX on Linux; the agent's are a GUID and ".key"
)

// IMDS's address and the Azure Arc agent's files on Linux (MSAL Go's imdsDefaultEndpoint,
// linuxHimdsPath and linuxTokenPath). They are variables only so that tests can point them at a dead
// loopback port and into a temporary directory (no test may ever reach 169.254.169.254); nothing in
// the environment can change them, so that no variable can make the program read another directory's
// files. AZURE_POD_IDENTITY_AUTHORITY_HOST is the documented way to point IMDS elsewhere.
var (
	imdsDefaultHost = "http://169.254.169.254"
	arcAgentFile    = "/opt/azcmagent/bin/himds"
	arcTokenDir     = "/var/opt/azcmagent/tokens"
)

// miHost is the kind of managed identity endpoint.
type miHost int

const (
	hostIMDS miHost = iota
	hostAppService
	hostArc
	hostServiceFabric
)

func (h miHost) String() string {
	return [...]string{"IMDS", "App Service", "Azure Arc", "Service Fabric"}[h]
}

// miSelector is the identity ENTRA_MANAGED_IDENTITY names: the system-assigned one (kind ""), or a
// user-assigned one by "client_id", "object_id" or "resource_id".
type miSelector struct {
	kind  string
	value string
}

func (s miSelector) String() string {
	if s.kind == "" {
		return "system"
	}
	return s.kind + "=" + s.value
}

// managedIdentityForms names the accepted values of ENTRA_MANAGED_IDENTITY, for messages.
const managedIdentityForms = `want "system", "client_id=<GUID>", "object_id=<GUID>" or "resource_id=/subscriptions/<GUID>/resourceGroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>"`

// parseManagedIdentity parses ENTRA_MANAGED_IDENTITY: "system", "client_id=<GUID>",
// "object_id=<GUID>" or "resource_id=<the user-assigned identity's Azure resource ID>".
func parseManagedIdentity(v string) (miSelector, error) {
	if v == "system" {
		return miSelector{}, nil
	}
	kind, value, _ := strings.Cut(v, "=")
	switch {
	case (kind == "client_id" || kind == "object_id") && isGUID(value):
		return miSelector{kind, value}, nil
	case kind == "resource_id" && isIdentityResourceID(value):
		return miSelector{kind, value}, nil
	}
	return miSelector{}, fmt.Errorf("ENTRA_MANAGED_IDENTITY %q: %s", truncate(v, 2*maxField+200), managedIdentityForms)
}

// isIdentityResourceID reports whether id is the Azure resource ID of a user-assigned identity:
// /subscriptions/{GUID}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name},
// the fixed segments in any case, as Azure Resource Manager reads them, and no white space, control
// characters or URL syntax in the others.
func isIdentityResourceID(id string) bool {
	parts := strings.Split(id, "/")
	if len(parts) != 9 || parts[0] != "" || !isGUID(parts[2]) {
		return false
	}
	for i, want := range map[int]string{1: "subscriptions", 3: "resourceGroups", 5: "providers", 6: "Microsoft.ManagedIdentity", 7: "userAssignedIdentities"} {
		if !strings.EqualFold(parts[i], want) {
			return false
		}
	}
	for _, p := range []string{parts[4], parts[8]} {
		if p == "" || len(p) > 128 || strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune("?#%&=\\", r) }) {
			return false
		}
	}
	return true
}

// managedIdentitySource is managed identity: one endpoint on the host, chosen at start from the
// platform's variables. It reads no file but Azure Arc's key file, at each attempt.
type managedIdentitySource struct {
	id       miSelector
	resource string
	host     miHost
	endpoint *url.URL // the token URL, without the query
	// authorityHost is AZURE_POD_IDENTITY_AUTHORITY_HOST, "" when unset: IMDS at another address.
	authorityHost string
	// arcByFile: no platform variable names the endpoint, so it is IMDS unless the Azure Arc agent is
	// installed (arcAgentFile exists), which only [managedIdentitySource.resolve] may look at: it
	// touches the file system.
	arcByFile bool
	// secret is IDENTITY_HEADER (App Service, Service Fabric): it proves the request comes from the
	// app, and is never printed.
	secret     string
	thumbprint []byte // Service Fabric: SHA-1 of its endpoint's certificate
}

// loadManagedIdentity reads the managed identity's variables through getenv, without touching the
// file system or the network: ENTRA_MANAGED_IDENTITY, and the platform's variables that say which
// endpoint the host has, in MSAL Go's order (GetSource): IDENTITY_ENDPOINT, IDENTITY_HEADER and
// IDENTITY_SERVER_THUMBPRINT (Service Fabric), IDENTITY_ENDPOINT and IDENTITY_HEADER (App Service),
// MSI_ENDPOINT (Azure ML with MSI_SECRET, else Cloud Shell: both refused), IDENTITY_ENDPOINT and
// IMDS_ENDPOINT (Azure Arc), else IMDS, or Azure Arc if its agent is installed; and
// AZURE_POD_IDENTITY_AUTHORITY_HOST for IMDS. Errors carry exit status 1.
func loadManagedIdentity(getenv func(string) string, resource string) (*managedIdentitySource, error) {
	id, err := parseManagedIdentity(getenv("ENTRA_MANAGED_IDENTITY"))
	if err != nil {
		return nil, withExit(exitConfig, err)
	}
	s := &managedIdentitySource{id: id, resource: resource}
	identityEndpoint, identityHeader := getenv("IDENTITY_ENDPOINT"), getenv("IDENTITY_HEADER")
	switch thumbprint := getenv("IDENTITY_SERVER_THUMBPRINT"); {
	case identityEndpoint != "" && identityHeader != "" && thumbprint != "":
		s.host, s.secret = hostServiceFabric, identityHeader
		if s.thumbprint, err = parseThumbprint(thumbprint); err != nil {
			return nil, withExit(exitConfig, err)
		}
		if s.endpoint, err = parseEndpoint("IDENTITY_ENDPOINT", identityEndpoint, "https"); err != nil {
			return nil, withExit(exitConfig, err)
		}
	case identityEndpoint != "" && identityHeader != "":
		s.host, s.secret = hostAppService, identityHeader
		if s.endpoint, err = parseEndpoint("IDENTITY_ENDPOINT", identityEndpoint, "http", "https"); err != nil {
			return nil, withExit(exitConfig, err)
		}
	case getenv("MSI_ENDPOINT") != "" && getenv("MSI_SECRET") != "":
		return nil, withExit(exitConfig, errors.New("ENTRA_MANAGED_IDENTITY: this is Azure Machine Learning (MSI_ENDPOINT and MSI_SECRET are set), whose managed identity endpoint is not supported here: use a service principal (ENTRA_SERVICE_PRINCIPAL) or workload identity"))
	case getenv("MSI_ENDPOINT") != "":
		return nil, withExit(exitConfig, errors.New("ENTRA_MANAGED_IDENTITY: this is Azure Cloud Shell (MSI_ENDPOINT is set), whose managed identity endpoint is not supported here: use \"az account get-access-token\" in Cloud Shell"))
	case identityEndpoint != "" && getenv("IMDS_ENDPOINT") != "":
		s.host = hostArc
		if s.endpoint, err = parseEndpoint("IDENTITY_ENDPOINT", identityEndpoint, "http"); err != nil {
			return nil, withExit(exitConfig, err)
		}
	default:
		s.host = hostIMDS
		host := imdsDefaultHost
		if s.authorityHost = getenv("AZURE_POD_IDENTITY_AUTHORITY_HOST"); s.authorityHost != "" {
			host = s.authorityHost
		} else {
			s.arcByFile = true
		}
		u, err := parseEndpoint("AZURE_POD_IDENTITY_AUTHORITY_HOST", host, "http", "https")
		if err != nil {
			return nil, withExit(exitConfig, err)
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.ForceQuery {
			return nil, withExit(exitConfig, fmt.Errorf("AZURE_POD_IDENTITY_AUTHORITY_HOST %q: want scheme://host[:port] and nothing else: the path %s is added", u.Redacted(), imdsTokenPath))
		}
		u.Path = imdsTokenPath
		s.endpoint = u
	}
	// Refused here, before any request (App Service and Service Fabric alike): net/http would refuse
	// the header only when sending it, as a network error, and it would be retried.
	if strings.ContainsFunc(s.secret, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, withExit(exitConfig, errors.New("IDENTITY_HEADER holds control characters"))
	}
	if err := s.checkSelector(s.host); err != nil {
		return nil, err
	}
	return s, nil
}

// checkSelector refuses a user-assigned identity on a host that cannot choose one.
func (s *managedIdentitySource) checkSelector(host miHost) error {
	if s.id.kind == "" {
		return nil
	}
	switch host {
	case hostArc:
		// azidentity refuses it too; MSAL Go 1.9 sends it but must then check that the agent did not
		// answer with the system-assigned identity instead.
		return withExit(exitConfig, fmt.Errorf("ENTRA_MANAGED_IDENTITY %q: the Azure Arc agent gives only the machine's system-assigned identity: set ENTRA_MANAGED_IDENTITY=system", s.id))
	case hostServiceFabric:
		return withExit(exitConfig, fmt.Errorf("ENTRA_MANAGED_IDENTITY %q: on Service Fabric the application's identity is set by the cluster's configuration (https://aka.ms/servicefabricmi): set ENTRA_MANAGED_IDENTITY=system", s.id))
	}
	return nil
}

// parseEndpoint parses the URL in variable name: an absolute URL with one of schemes, a host, and no
// user information or fragment. Errors quote it.
func parseEndpoint(name, v string, schemes ...string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil || !slices.Contains(schemes, u.Scheme) || u.Host == "" || u.User != nil || u.Fragment != "" {
		if err == nil && u.User == nil {
			return nil, fmt.Errorf("%s %q: want an %s URL with a host", name, truncate(v, 256), strings.Join(schemes, " or "))
		}
		return nil, fmt.Errorf("%s: want an %s URL with a host, and no user information", name, strings.Join(schemes, " or "))
	}
	return u, nil
}

// parseThumbprint parses IDENTITY_SERVER_THUMBPRINT, a SHA-1 thumbprint in hexadecimal, with any
// colons or white space.
func parseThumbprint(v string) ([]byte, error) {
	hexDigits := strings.Map(func(r rune) rune {
		if r == ':' || unicode.IsSpace(r) {
			return -1
		}
		return r
	}, v)
	b, err := hex.DecodeString(hexDigits)
	if err != nil || len(b) != sha1.Size {
		return nil, errors.New("IDENTITY_SERVER_THUMBPRINT: want the SHA-1 thumbprint of the Service Fabric endpoint's certificate, 40 hexadecimal digits")
	}
	return b, nil
}

// resolve returns the host and token URL: IMDS becomes Azure Arc's agent at its default address when
// no variable named an endpoint and the agent is installed (MSAL Go's isAzureArcEnvironment). It
// reads the file system.
func (s *managedIdentitySource) resolve() (miHost, *url.URL) {
	if s.arcByFile {
		if _, err := os.Stat(arcAgentFile); err == nil {
			u, _ := url.Parse(arcDefaultEndpoint)
			return hostArc, u
		}
	}
	return s.host, s.endpoint
}

// check describes the source for the start-up line; on Azure Arc it also refuses a user-assigned
// identity and any system but Linux.
func (s *managedIdentitySource) check(time.Time) (sourceInfo, error) {
	host, endpoint := s.resolve()
	if err := s.checkSelector(host); err != nil {
		return sourceInfo{}, err
	}
	if host == hostArc && runtime.GOOS != "linux" {
		return sourceInfo{}, withExit(exitConfig, fmt.Errorf("managed identity: Azure Arc is supported on Linux only, not %s", runtime.GOOS))
	}
	info := sourceInfo{
		who:      []any{"managed_identity", s.id.String()},
		attrs:    []any{"credential", "managed identity", "source", host.String()},
		endpoint: endpoint.String(),
		proxy:    "none",
	}
	if s.authorityHost != "" {
		info.attrs = append(info.attrs, "AZURE_POD_IDENTITY_AUTHORITY_HOST", s.authorityHost)
	}
	switch host {
	case hostAppService, hostServiceFabric:
		info.proxy = proxyFor(info.endpoint)
	}
	return info, nil
}

// token makes one attempt: one request (Azure Arc: two, its challenge and the answer) to the host's
// endpoint. IMDS and Azure Arc are reached directly, never through a proxy: IMDS "isn't intended to be
// used behind a proxy" (https://learn.microsoft.com/en-us/azure/virtual-machines/instance-metadata-service);
// App Service's endpoint is on the loopback address, which Go never proxies, and Service Fabric's
// follows HTTPS_PROXY and NO_PROXY. No redirect is ever followed.
func (s *managedIdentitySource) token(ctx context.Context, client *http.Client, _ time.Time) (*tokenResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	host, endpoint := s.resolve()
	switch host {
	case hostIMDS, hostArc:
		client = withTransport(client, func(t *http.Transport) { t.Proxy = nil })
	case hostServiceFabric:
		client = withTransport(client, func(t *http.Transport) { t.TLSClientConfig = pinnedTLS(s.thumbprint) })
	}
	var key string
	if host == hostArc {
		var err error
		if key, err = s.arcChallenge(ctx, client, endpoint); err != nil {
			return nil, err
		}
	}
	resp, body, err := send(client, s.request(ctx, host, endpoint, key))
	if err != nil {
		if r, ok := errors.AsType[*retryable](err); ok {
			r.err = fmt.Errorf("%w: %s", r.err, s.unreachable(host, endpoint))
		}
		return nil, err
	}
	tr, err := s.interpret(host, resp, body)
	if err != nil {
		return nil, err
	}
	if err := s.checkIdentity(host, tr.AccessToken); err != nil {
		return nil, err
	}
	return tr, nil
}

// checkIdentity refuses a token for another identity than the user-assigned one ENTRA_MANAGED_IDENTITY
// selects, as an endpoint that ignored the selector (a wrong spelling, an agent that cannot choose)
// would hand out: the token's "appid" (client ID; "azp" in a v2.0 token), "oid" (object ID) or
// "xms_mirid" (resource ID), when it has the claim, must be the selected one
// (https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference). It reads the claims without verifying the token,
// as [checkToken] does; a token it cannot read is left to [checkToken]. Its error has exit status 12,
// as [checkToken]'s do.
func (s *managedIdentitySource) checkIdentity(host miHost, token string) error {
	if s.id.kind == "" {
		return nil
	}
	parsed, err := jwt.ParseSigned(token, tokenAlgorithms)
	if err != nil {
		return nil
	}
	var claims map[string]any
	if parsed.UnsafeClaimsWithoutVerification(&claims) != nil {
		return nil
	}
	for _, claim := range map[string][]string{"client_id": {"appid", "azp"}, "object_id": {"oid"}, "resource_id": {"xms_mirid"}}[s.id.kind] {
		got, ok := claims[claim].(string)
		if !ok || strings.EqualFold(got, s.id.value) {
			continue
		}
		return withExit(exitTokenInvalid, fmt.Errorf("checking the access token: the %s endpoint returned a token whose %q is %q, not the identity %s that ENTRA_MANAGED_IDENTITY selects: it ignored the selection and handed out another identity, perhaps the system-assigned one",
			host, claim, truncate(got, 2*maxField), s.id))
	}
	return nil
}

// withTransport returns a copy of client whose transport (an *http.Transport, as [newHTTPClient]'s
// is) is cloned and changed by f.
func withTransport(client *http.Client, f func(*http.Transport)) *http.Client {
	c := *client
	t, ok := client.Transport.(*http.Transport)
	if !ok {
		t = http.DefaultTransport.(*http.Transport)
	}
	t = t.Clone()
	f(t)
	c.Transport = t
	return &c
}

// pinnedTLS returns the TLS configuration for Service Fabric's endpoint, whose certificate is
// self-signed: it is accepted if and only if its SHA-1 thumbprint is thumbprint
// (IDENTITY_SERVER_THUMBPRINT), as MSAL Go's servicefabric.go does. The chain is not verified, since
// there is none; the pin replaces it. A certificate that does not match is a
// [*tls.CertificateVerificationError], which [send] does not retry: it will not go away on its own.
func pinnedTLS(thumbprint []byte) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // #nosec G402: VerifyConnection pins the certificate
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return &tls.CertificateVerificationError{Err: errors.New("the Service Fabric endpoint sent no certificate")}
			}
			sum := sha1.Sum(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(sum[:], thumbprint) != 1 {
				return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates,
					Err: fmt.Errorf("the Service Fabric endpoint's certificate has the thumbprint %X, not IDENTITY_SERVER_THUMBPRINT's", sum[:])}
			}
			return nil
		},
	}
}

// request returns the GET request for host at endpoint: api-version, resource and the user-assigned
// identity's selector in the query, in the host's own spelling (IMDS msi_res_id, App Service
// mi_res_id and principal_id), and the host's headers. key is Azure Arc's challenge answer, "" for the
// challenge itself and the other hosts.
func (s *managedIdentitySource) request(ctx context.Context, host miHost, endpoint *url.URL, key string) *http.Request {
	q := endpoint.Query() // App Service's endpoint may carry a query of its own
	q.Set("resource", s.resource)
	switch host {
	case hostIMDS:
		q.Set("api-version", imdsAPIVersion)
		if s.id.kind != "" {
			q.Set(map[string]string{"client_id": "client_id", "object_id": "object_id", "resource_id": "msi_res_id"}[s.id.kind], s.id.value)
		}
	case hostAppService:
		// https://learn.microsoft.com/en-us/azure/app-service/overview-managed-identity, "REST
		// endpoint reference".
		q.Set("api-version", appServiceAPIVersion)
		if s.id.kind != "" {
			q.Set(map[string]string{"client_id": "client_id", "object_id": "principal_id", "resource_id": "mi_res_id"}[s.id.kind], s.id.value)
		}
	case hostArc:
		q.Set("api-version", arcAPIVersion)
	case hostServiceFabric:
		q.Set("api-version", serviceFabricAPIVersion)
	}
	u := *endpoint
	u.RawQuery = q.Encode()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil) // u is a parsed URL
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "azure-rest-api-token/"+programVersion())
	switch host {
	case hostIMDS:
		req.Header.Set("Metadata", "true")
	case hostArc:
		req.Header.Set("Metadata", "true")
		if key != "" {
			req.Header.Set("Authorization", "Basic "+key)
		}
	case hostAppService:
		req.Header.Set("X-IDENTITY-HEADER", s.secret)
	case hostServiceFabric:
		req.Header.Set("Secret", s.secret)
	}
	return req
}

// arcChallenge sends Azure Arc's first request, which the agent must answer with 401 and a
// WWW-Authenticate header naming a key file, and returns the key file's content: the proof that this
// process may read the agent's token directory. The file is read only if [arcKeyFile] accepts its
// path. The key is never printed.
func (s *managedIdentitySource) arcChallenge(ctx context.Context, client *http.Client, endpoint *url.URL) (string, error) {
	resp, _, err := send(client, s.request(ctx, hostArc, endpoint, ""))
	if err != nil {
		if r, ok := errors.AsType[*retryable](err); ok {
			r.err = fmt.Errorf("%w: %s", r.err, s.unreachable(hostArc, endpoint))
		}
		return "", err
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return "", fmt.Errorf("the Azure Arc agent at %q answered %d %s to the first request, want 401 with a challenge: is it the Azure Arc agent (IDENTITY_ENDPOINT)?",
			endpoint.Redacted(), resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	path, err := arcKeyPath(resp.Header.Get("WWW-Authenticate"))
	if err == nil {
		err = arcKeyFile(path, arcTokenDir)
	}
	if err != nil {
		return "", fmt.Errorf("the Azure Arc agent at %q: %w: refused, nothing was read or sent (is something other than the Azure Arc agent listening there?)", endpoint.Redacted(), err)
	}
	key, err := readArcKey(path)
	if err != nil {
		return "", withExit(exitConfig, fmt.Errorf("reading the Azure Arc key file %q: %w (this program must run as root or in the himds group to read it)", truncate(path, 2*maxField+len(arcTokenDir)), err))
	}
	return key, nil
}

// arcKeyPath returns the path in an Azure Arc challenge, `Basic realm=<path>` (MSAL Go's
// getAzureArcSecretKey).
func arcKeyPath(challenge string) (string, error) {
	scheme, rest, _ := strings.Cut(challenge, " ")
	path, ok := strings.CutPrefix(strings.TrimSpace(rest), "realm=")
	if !strings.EqualFold(scheme, "Basic") || !ok || path == "" {
		return "", fmt.Errorf("its challenge (WWW-Authenticate) %q is not \"Basic realm=<key file>\"", truncate(challenge, 2*maxField))
	}
	return path, nil
}

// arcKeyFile reports an error, quoting path (cut short), unless path names a ".key" file directly in
// dir, the agent's token directory, whose name is letters, digits, "-" and "_" before ".key" (the
// agent names them by GUID), at most maxArcKeyName bytes in all: written as is, absolute, with no "."
// or ".." and no link followed (see [readArcKey]). A hostile listener on the agent's port must not
// make this program send it another file's content, nor print a name of its choosing at any length.
func arcKeyFile(path, dir string) error {
	stem, isKey := strings.CutSuffix(filepath.Base(path), ".key")
	if !filepath.IsAbs(path) || filepath.Clean(path) != path || filepath.Dir(path) != dir || !isKey || stem == "" ||
		len(filepath.Base(path)) > maxArcKeyName ||
		strings.ContainsFunc(stem, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_')
		}) {
		return fmt.Errorf("its challenge names the key file %q, not a .key file in %s", truncate(path, 2*maxField), dir)
	}
	return nil
}

// readArcKey reads the Azure Arc key file at path: a regular file, not a symbolic link, of at most
// maxArcKeySize bytes, opened and checked to be the same file, and holding no white space or control
// characters once trimmed. It opens without blocking (O_NONBLOCK) or following a symbolic link
// (O_NOFOLLOW), so that a FIFO or a link put in the file's place between the check and the opening
// can neither hang it nor make it open another file (opening a device or a FIFO acts by itself); the
// check after opening refuses whatever else it opened. Errors never hold its content.
func readArcKey(path string) (string, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return "", pathErr(err)
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file (%s)", info.Mode().Type())
	}
	if info.Size() > maxArcKeySize {
		return "", fmt.Errorf("larger than %d bytes", maxArcKeySize)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|oNoFollow, 0)
	if err != nil {
		return "", pathErr(err)
	}
	defer f.Close()
	if opened, err := f.Stat(); err != nil || !os.SameFile(info, opened) {
		return "", errors.New("replaced while it was opened")
	}
	data, err := io.ReadAll(io.LimitReader(f, maxArcKeySize+1))
	if err != nil {
		return "", pathErr(err)
	}
	if len(data) > maxArcKeySize {
		return "", fmt.Errorf("larger than %d bytes", maxArcKeySize)
	}
	key := strings.TrimSpace(string(data))
	if key == "" || checkPrintable(key) != nil {
		return "", errors.New("empty, or holds white space or control characters")
	}
	return key, nil
}

// interpret reads a managed identity endpoint's answer as a token response (the same shape and error
// shape as Entra's v1 endpoint; expires_in and expires_on, strings, numbers or dates depending on the
// host, are not read: the token's "exp" is the truth) and explains a refusal with the fix for host.
// IMDS's answers are retried as [imdsRetryable] says, the others' as Entra's.
func (s *managedIdentitySource) interpret(host miHost, resp *http.Response, body []byte) (*tokenResponse, error) {
	var probe map[string]json.RawMessage
	if json.Unmarshal(body, &probe) != nil {
		err := fmt.Errorf("token response from %s at %q: %d %s, not a JSON object (Content-Type %q, %d bytes): %s",
			host, resp.Request.URL.Host, resp.StatusCode, http.StatusText(resp.StatusCode),
			truncate(resp.Header.Get("Content-Type"), maxField), len(body), s.notIdentityEndpoint(host, resp.StatusCode))
		if s.retryStatus(host, resp.StatusCode) {
			return nil, retryAnswer(resp, err)
		}
		return nil, err
	}
	tr, err := interpretResponse(resp, body)
	if err == nil {
		return tr, nil
	}
	if e, ok := errors.AsType[*entraError](err); ok {
		e.refuser = host.String()
		e.hint = s.refusalHint(host, resp.StatusCode, e.Code)
	}
	if host != hostIMDS {
		return nil, err
	}
	if r, ok := errors.AsType[*retryable](err); ok {
		err = r.err
	}
	if imdsRetryable(resp.StatusCode) {
		return nil, retryAnswer(resp, err)
	}
	return nil, err
}

// retryStatus reports whether host's answer status is worth another attempt.
func (s *managedIdentitySource) retryStatus(host miHost, status int) bool {
	if host == hostIMDS {
		return imdsRetryable(status)
	}
	return retryableStatus[status]
}

// imdsRetryable reports whether an IMDS answer with status is worth another attempt, as Microsoft
// documents for IMDS and MSAL Go does (retryCodesForIMDS): 404 (the identity is not yet assigned, or
// not yet known after its assignment), 410 (IMDS is updating, "available in a maximum of 70 seconds"),
// 429 and every 5xx but 509; never 400, 401 or 403, whose request would be refused again
// (https://learn.microsoft.com/en-us/entra/identity/managed-identities-azure-resources/how-to-use-vm-token#retry-guidance).
// Network errors are retried too ([send]).
func imdsRetryable(status int) bool {
	switch {
	case status == http.StatusNotFound, status == http.StatusGone, status == http.StatusTooManyRequests:
		return true
	case status >= 500 && status <= 599:
		return status != 509
	}
	return false
}

// unreachable explains a network error on the way to host's endpoint.
func (s *managedIdentitySource) unreachable(host miHost, endpoint *url.URL) string {
	switch {
	case host == hostIMDS && s.authorityHost != "":
		return "no answer from IMDS at AZURE_POD_IDENTITY_AUTHORITY_HOST"
	case host == hostIMDS:
		return "no answer from IMDS at 169.254.169.254: not on an Azure VM or scale set, or a NetworkPolicy blocks 169.254.169.254/32"
	case host == hostArc:
		return fmt.Sprintf("no answer from the Azure Arc agent at %q: is the agent (himds) running?", endpoint.Host)
	}
	return fmt.Sprintf("no answer from the %s identity endpoint at %q (IDENTITY_ENDPOINT)", host, endpoint.Host)
}

// notIdentityEndpoint explains an answer that is not JSON.
func (s *managedIdentitySource) notIdentityEndpoint(host miHost, status int) string {
	if host == hostIMDS && s.authorityHost == "" {
		return "a proxy or gateway answered instead of IMDS, which must be reached directly: check that nothing on the node intercepts 169.254.169.254"
	}
	if status == http.StatusBadGateway || status == http.StatusGatewayTimeout {
		return fmt.Sprintf("a proxy or gateway answered instead of the %s identity endpoint", host)
	}
	return fmt.Sprintf("not the %s identity endpoint?", host)
}

// refusalHint returns the fix for a refusal by host with status and OAuth error code.
func (s *managedIdentitySource) refusalHint(host miHost, status int, code string) string {
	switch {
	case code == "invalid_resource":
		return "check AZURE_RESOURCE, exactly, trailing slash included"
	case host == hostIMDS && status == http.StatusBadRequest && s.id.kind == "":
		return "this VM or scale set has no system-assigned managed identity: enable it (az vm identity assign, az vmss identity assign), or set ENTRA_MANAGED_IDENTITY to a user-assigned identity assigned to it"
	case host == hostIMDS && status == http.StatusBadRequest:
		return fmt.Sprintf("the user-assigned identity %s is not assigned to this VM or scale set, or does not exist: assign it (az vmss identity assign --identities <its resource ID>), or correct ENTRA_MANAGED_IDENTITY", s.id)
	case host == hostIMDS && status == http.StatusNotFound:
		return "IMDS does not know the identity (yet): a new assignment can take minutes to reach IMDS; check ENTRA_MANAGED_IDENTITY"
	case host == hostAppService && (status == http.StatusUnauthorized || status == http.StatusForbidden):
		return "the App Service identity endpoint rejected IDENTITY_HEADER: the platform rotates it; restart the app so that its environment holds the current value"
	case host == hostAppService && status == http.StatusBadRequest && s.id.kind != "":
		return fmt.Sprintf("the user-assigned identity %s is not assigned to this app, or does not exist: add it to the app's identities, or correct ENTRA_MANAGED_IDENTITY", s.id)
	case host == hostAppService && status == http.StatusBadRequest:
		return "this app has no system-assigned managed identity: turn it on (az webapp identity assign), or set ENTRA_MANAGED_IDENTITY to a user-assigned identity of the app"
	case host == hostArc && status == http.StatusUnauthorized:
		return "the Azure Arc agent refused the key file's content: it may have been replaced; try again"
	case host == hostServiceFabric && (status == http.StatusUnauthorized || status == http.StatusForbidden):
		return "the Service Fabric endpoint rejected IDENTITY_HEADER"
	}
	return ""
}
