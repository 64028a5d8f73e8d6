package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
)

// servicePrincipal is the JSON that "az ad sp create-for-rbac" prints
// (https://learn.microsoft.com/en-us/cli/azure/ad/sp#az-ad-sp-create-for-rbac). Password is the client
// secret and must never be printed; it is "" when the file has "password": null, as
// "az ad sp create-for-rbac --create-cert" prints, which then names its certificate in CertificateFile
// (a path on the machine where the CLI ran).
type servicePrincipal struct {
	AppID           string // client ID
	DisplayName     string
	Password        string // client secret
	Tenant          string // tenant ID or domain name
	CertificateFile string // fileWithCertAndPrivateKey
}

// readServicePrincipal reads and checks the service principal file at path, following symbolic links
// (a Kubernetes Secret volume links the file into a "..data" directory). An unreadable file gives exit
// status 1, an invalid one exit status 2. Errors never quote the file's content: it holds the secret.
func readServicePrincipal(path string) (servicePrincipal, error) {
	data, err := readCredentialFile(path)
	if errors.Is(err, errTooLarge) {
		return servicePrincipal{}, withExit(exitCredential, fmt.Errorf("reading service principal %q: %w: not a service principal file", path, err))
	} else if err != nil {
		return servicePrincipal{}, withExit(exitConfig, fmt.Errorf("reading service principal %q: %w", path, err))
	}
	sp, err := parseServicePrincipal(data)
	if err != nil {
		return servicePrincipal{}, withExit(exitCredential, fmt.Errorf("reading service principal %q: %w", path, err))
	}
	return sp, nil
}

// spFile holds every attribute of the known service principal file formats that parseServicePrincipal
// tells apart. Pointers tell a missing attribute from an empty one.
type spFile struct {
	AppID       *string         `json:"appId"`
	DisplayName *string         `json:"displayName"`
	Password    json.RawMessage `json:"password"` // a string, or null with --create-cert
	Tenant      *string         `json:"tenant"`

	// "az ad sp create-for-rbac --create-cert" sets password to null and names a PEM file instead.
	FileWithCertAndPrivateKey *string `json:"fileWithCertAndPrivateKey"`

	// "az ad sp create-for-rbac --sdk-auth" (deprecated) prints another shape.
	ClientID     *string `json:"clientId"`
	ClientSecret *string `json:"clientSecret"`
	TenantID     *string `json:"tenantId"`
}

// parseServicePrincipal parses the content of a service principal file: UTF-8 JSON, with or without a
// byte-order mark. "password" is a non-empty string, or null for a
// certificate credential. It names the formats it recognises but cannot use (UTF-16, --sdk-auth) and
// says what to do. Its errors never hold any of data.
func parseServicePrincipal(data []byte) (servicePrincipal, error) {
	if isUTF16(data) {
		return servicePrincipal{}, errors.New("file is UTF-16 text (as Windows PowerShell 5 writes with \">\"): save it as UTF-8, e.g. with \"Out-File -Encoding utf8\" or PowerShell 7")
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var f spFile
	if err := json.Unmarshal(data, &f); err != nil {
		return servicePrincipal{}, jsonError(err)
	}
	if f.AppID == nil && f.Password == nil && f.Tenant == nil && (f.ClientID != nil || f.ClientSecret != nil || f.TenantID != nil) {
		return servicePrincipal{}, errors.New(`file has the "az ad sp create-for-rbac --sdk-auth" shape (clientId, clientSecret, tenantId): want the default output, {"appId", "displayName", "password", "tenant"}; rename the attributes or create the secret again without --sdk-auth`)
	}
	var password string
	if f.Password != nil && string(f.Password) != "null" {
		if err := json.Unmarshal(f.Password, &password); err != nil {
			return servicePrincipal{}, errors.New(`attribute "password" must be a string, or null for a certificate credential`)
		}
		if password == "" {
			f.Password = nil // empty: report it as missing
		}
	}
	var missing []string
	for _, a := range []struct {
		name    string
		missing bool
	}{
		{"appId", f.AppID == nil || *f.AppID == ""},
		{"displayName", f.DisplayName == nil || *f.DisplayName == ""},
		{"password", f.Password == nil},
		{"tenant", f.Tenant == nil || *f.Tenant == ""},
	} {
		if a.missing {
			missing = append(missing, fmt.Sprintf("%q", a.name))
		}
	}
	if len(missing) > 0 {
		return servicePrincipal{}, fmt.Errorf("missing or empty attribute %s: want the JSON \"az ad sp create-for-rbac\" prints", strings.Join(missing, ", "))
	}
	sp := servicePrincipal{AppID: *f.AppID, DisplayName: *f.DisplayName, Password: password, Tenant: *f.Tenant}
	if f.FileWithCertAndPrivateKey != nil {
		sp.CertificateFile = *f.FileWithCertAndPrivateKey
	}
	if err := checkTenant(sp.Tenant); err != nil {
		return servicePrincipal{}, err
	}
	if err := checkClientID(sp.AppID); err != nil {
		return servicePrincipal{}, fmt.Errorf("attribute \"appId\" %w: want the appId \"az ad sp create-for-rbac\" printed", err)
	}
	return sp, nil
}

// looksLikePlaceholder reports whether s looks copied from an example rather than from Azure: it holds
// one of <>{}[], an ellipsis ("..." or "…"), or is the all-zero GUID that examples use. Entra would
// refuse it with a confusing error (a client or tenant that does not exist); better to say so first.
func looksLikePlaceholder(s string) bool {
	return strings.ContainsAny(s, "<>{}[]…") || strings.Contains(s, "...") ||
		s == "00000000-0000-0000-0000-000000000000"
}

// checkClientID returns an error unless id is an application (client) ID: a GUID, not a placeholder.
// Its text follows the field's name ("attribute \"appId\" looks like ...") and never quotes id.
func checkClientID(id string) error {
	switch {
	case looksLikePlaceholder(id):
		return errors.New("looks like a placeholder from an example, not a client ID")
	case !isGUID(id):
		return errors.New("is not a client ID: want a GUID, 8-4-4-4-12 hexadecimal digits")
	}
	return nil
}

// isUTF16 reports whether data looks like UTF-16 text: a UTF-16 byte-order mark, or JSON's first
// character followed or preceded by a zero byte.
func isUTF16(data []byte) bool {
	return bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) ||
		len(data) >= 2 && (data[0] == 0 || data[1] == 0)
}

// jsonError describes a JSON decoding error without the text encoding/json quotes from the input, which
// could be part of the secret.
func jsonError(err error) error {
	if e, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Errorf("not valid JSON: syntax error at byte %d", e.Offset)
	}
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		// Value may be "number 123": keep only the kind.
		kind, _, _ := strings.Cut(e.Value, " ")
		if e.Field == "" {
			return fmt.Errorf("not valid JSON: want an object, not %s", kind)
		}
		return fmt.Errorf("attribute %q must be a string, not %s", e.Field, kind)
	}
	return errors.New("not valid JSON")
}

// checkPrintable reports an error if s holds white space or control characters.
func checkPrintable(s string) error {
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errors.New("holds white space or control characters")
	}
	return nil
}

// checkTenant reports an error unless tenant is a tenant ID or a domain name: ASCII letters, digits,
// "." and "-", the rule the Azure SDK for Go applies before putting it in a URL path (azidentity's
// validTenantID), and starting with a letter or digit, so that "." and ".." cannot climb the path;
// then a GUID, or a name with a dot (a domain). A placeholder from an example is named as such. Its
// errors never quote tenant.
func checkTenant(tenant string) error {
	if looksLikePlaceholder(tenant) {
		return errors.New(`attribute "tenant" looks like a placeholder from an example: want the tenant ID (a GUID) or a domain name such as contoso.onmicrosoft.com`)
	}
	if tenant == "" || tenant[0] == '.' || tenant[0] == '-' {
		return errors.New(`attribute "tenant" must be a tenant ID or domain name, starting with a letter or digit`)
	}
	for _, r := range tenant {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '-') {
			return errors.New(`attribute "tenant" must be a tenant ID or domain name: ASCII letters, digits, "." and "-" only`)
		}
	}
	if !isGUID(tenant) && !strings.Contains(tenant, ".") {
		return errors.New(`attribute "tenant" must be a tenant ID or domain name: a GUID, 8-4-4-4-12 hexadecimal digits, or a domain such as contoso.onmicrosoft.com`)
	}
	return nil
}

// source is one way of getting an access token: a credential for Entra ID (client secret, certificate,
// federated token) or managed identity. [loadSource] builds the one the environment configures, once;
// the job and the renewal loop hold it without knowing which it is. A source reads its files (service
// principal file, certificate, federated token) again at every attempt, so that one the kubelet
// rotated is used at once. Its methods never put a secret, key, assertion or token in an error or in
// what they describe.
type source interface {
	// check reads and checks the credential at now, before any request, and describes it for the
	// log. Its errors carry exit status 1 (unreadable files, environment) or 2 (invalid credential).
	check(now time.Time) (sourceInfo, error)
	// token makes one attempt at an access token at now: it reads the credential again and sends one
	// request with client (managed identity's Azure Arc, two: its challenge and the answer). An error
	// that another attempt may mend is a [*retryable].
	token(ctx context.Context, client *http.Client, now time.Time) (*tokenResponse, error)
}

// sourceInfo describes a source for the log: never anything secret.
type sourceInfo struct {
	who          []any  // whom the token is for (display_name, client_id), on the start-up and the written lines
	attrs        []any  // the tenant and the credential's kind and identifiers, on the start-up line
	endpoint     string // where the request goes
	proxy        string // the proxy to it, "none" for a direct connection
	warning      string // logged before the request, with warningAttrs, when not ""
	warningAttrs []any
	// tenant and clientID are whom the tokens are issued to, as their "tid" and "appid" (or "azp")
	// claims say, to recognise a token file of ours at start ([adoptable]); "" when unknown, and then
	// no token file is adopted.
	tenant, clientID string
}

// credential proves the client's identity to Entra ID in a token request. Its methods never return
// the secret, key or assertion in an error.
type credential interface {
	// clientForm returns the form fields that authenticate the client (client_id and a secret or
	// client assertion) for a request to endpoint at time now. It is called for every attempt, so an
	// assertion is always fresh and a federated token file is read as the kubelet last rotated it.
	clientForm(endpoint string, now time.Time) (url.Values, error)
	// v2 reports whether the credential needs the v2 token endpoint and a scope, as client assertions
	// do; a client secret uses the v1 endpoint and a resource.
	v2() bool
	// logAttrs describes the credential for the start-up log line: its kind and identifiers, never
	// anything secret.
	logAttrs() []any
}

// identity is whom the token is for.
type identity struct {
	clientID    string
	tenant      string
	displayName string // "" for workload identity, which has no service principal file
}

// loadSource returns the source the environment configures, reading nothing but the environment
// (files are read by the source, within BEARER_TOKEN_TIMEOUT): a service principal file
// (ENTRA_SERVICE_PRINCIPAL) with a client secret or, with "password": null, a certificate
// (AZURE_CLIENT_CERTIFICATE_PATH, else fileWithCertAndPrivateKey); or, without
// ENTRA_SERVICE_PRINCIPAL, workload identity federation (AZURE_CLIENT_ID, AZURE_TENANT_ID,
// AZURE_FEDERATED_TOKEN_FILE), as the Azure Workload Identity webhook sets them; or managed identity
// (ENTRA_MANAGED_IDENTITY, see [loadManagedIdentity]). It refuses to guess when two are configured.
// Errors carry exit status 1.
func loadSource(getenv func(string) string, authority *url.URL, resource string) (source, error) {
	if err := checkCredentialVariables(getenv); err != nil {
		return nil, withExit(exitConfig, err)
	}
	if getenv("ENTRA_MANAGED_IDENTITY") != "" {
		mi, err := loadManagedIdentity(getenv, resource)
		if err != nil {
			return nil, err
		}
		return mi, nil
	}
	app := entraApp{authority: authority, resource: resource}
	if path := getenv("ENTRA_SERVICE_PRINCIPAL"); path != "" {
		return &servicePrincipalSource{app: app, path: path, certFile: getenv("AZURE_CLIENT_CERTIFICATE_PATH")}, nil
	}
	return &workloadIdentitySource{app: app, clientID: getenv("AZURE_CLIENT_ID"), tenant: getenv("AZURE_TENANT_ID"),
		path: getenv("AZURE_FEDERATED_TOKEN_FILE")}, nil
}

// entraApp is what the Entra credentials share: the authority and the resource the token is for.
type entraApp struct {
	authority *url.URL
	resource  string
}

// endpoint returns the token endpoint for tenant: for a client secret the v1 endpoint
// {authority}/{tenant}/oauth2/token, as the tool this program replaces used
// (https://learn.microsoft.com/en-us/previous-versions/azure/active-directory/azuread-dev/v1-oauth2-client-creds-grant-flow);
// for client assertions (v2) the v2 endpoint {authority}/{tenant}/oauth2/v2.0/token
// (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow). The
// tenant has passed checkTenant and is path-escaped all the same.
func (a entraApp) endpoint(tenant string, v2 bool) string {
	// Not JoinPath: it would clean dot segments away.
	endpoint := a.authority.String() + url.PathEscape(tenant)
	if v2 {
		return endpoint + "/oauth2/v2.0/token"
	}
	return endpoint + "/oauth2/token"
}

// info describes the request for id with cred for the start-up line.
func (a entraApp) info(id identity, cred credential) sourceInfo {
	who := []any{"client_id", id.clientID}
	if id.displayName != "" { // workload identity has none
		who = append([]any{"display_name", id.displayName}, who...)
	}
	endpoint := a.endpoint(id.tenant, cred.v2())
	return sourceInfo{who: who, attrs: append([]any{"tenant", id.tenant}, cred.logAttrs()...),
		endpoint: endpoint, proxy: proxyFor(endpoint), tenant: id.tenant, clientID: id.clientID}
}

// request makes one client credentials request for id with cred at now: to the v1 endpoint with the
// resource, or to the v2 endpoint with the scope resource + "/.default", a double slash included when
// the resource ends in "/". A refusal is explained with what only the credential knows.
func (a entraApp) request(ctx context.Context, client *http.Client, id identity, cred credential, now time.Time) (*tokenResponse, error) {
	endpoint := a.endpoint(id.tenant, cred.v2())
	form, err := cred.clientForm(endpoint, now)
	if err != nil {
		return nil, err
	}
	form.Set("grant_type", "client_credentials")
	if cred.v2() {
		form.Set("scope", a.resource+"/.default")
	} else {
		form.Set("resource", a.resource)
	}
	resp, err := postForm(ctx, client, endpoint, form)
	if x, ok := cred.(interface{ explainRefusal(error) error }); ok && err != nil {
		err = x.explainRefusal(err)
	}
	return resp, err
}

// servicePrincipalSource is the service principal file (ENTRA_SERVICE_PRINCIPAL): its client secret,
// or with "password": null a certificate.
type servicePrincipalSource struct {
	app      entraApp
	path     string // ENTRA_SERVICE_PRINCIPAL
	certFile string // AZURE_CLIENT_CERTIFICATE_PATH, or ""
}

// load reads the service principal file and, for a certificate credential, the certificate, and checks
// them at now.
func (s *servicePrincipalSource) load(now time.Time) (identity, credential, error) {
	sp, err := readServicePrincipal(s.path)
	if err != nil {
		return identity{}, nil, err
	}
	id := identity{clientID: sp.AppID, tenant: sp.Tenant, displayName: sp.DisplayName}
	certFile := s.certFile
	if sp.Password != "" {
		if certFile != "" {
			return identity{}, nil, withExit(exitConfig, fmt.Errorf("service principal %q has a client secret and AZURE_CLIENT_CERTIFICATE_PATH names a certificate: use one, unset AZURE_CLIENT_CERTIFICATE_PATH or set \"password\" to null", s.path))
		}
		return id, &clientSecret{clientID: sp.AppID, secret: sp.Password}, nil
	}
	if certFile == "" {
		if sp.CertificateFile == "" {
			return identity{}, nil, withExit(exitCredential, fmt.Errorf("service principal %q has \"password\": null and names no certificate: set AZURE_CLIENT_CERTIFICATE_PATH to the PEM file with the certificate and its private key", s.path))
		}
		if _, err := os.Stat(sp.CertificateFile); err != nil {
			return identity{}, nil, withExit(exitConfig, fmt.Errorf("service principal %q is for a certificate credential (az ad sp create-for-rbac --create-cert) whose fileWithCertAndPrivateKey %q is not readable here (it names a path on the machine where the CLI ran): mount the PEM file and set AZURE_CLIENT_CERTIFICATE_PATH to it", s.path, sp.CertificateFile))
		}
		certFile = sp.CertificateFile
	}
	cert, err := loadCertificate(certFile, now)
	if err != nil {
		return identity{}, nil, err
	}
	cert.clientID = sp.AppID
	return id, cert, nil
}

func (s *servicePrincipalSource) check(now time.Time) (sourceInfo, error) {
	id, cred, err := s.load(now)
	if err != nil {
		return sourceInfo{}, err
	}
	info := s.app.info(id, cred)
	if cs, ok := cred.(*clientSecret); ok && cs.surroundingSpace() != "" {
		info.warning = "the client secret " + cs.surroundingSpace() + ": Entra's secrets have no white space; it is sent as it is"
		info.warningAttrs = []any{"file", s.path}
	}
	return info, nil
}

func (s *servicePrincipalSource) token(ctx context.Context, client *http.Client, now time.Time) (*tokenResponse, error) {
	id, cred, err := s.load(now)
	if err != nil {
		return nil, err
	}
	return s.app.request(ctx, client, id, cred, now)
}

// checkCredentialVariables returns an error if the credential's variables alone show it cannot work:
// none is set, two credentials are, a certificate has no service principal file, workload identity
// lacks one of its three variables, or managed identity's are wrong ([loadManagedIdentity]). [loadConfig] reports it with every other variable's problem, in
// one message, and [loadSource] refuses to go on without it.
func checkCredentialVariables(getenv func(string) string) error {
	spFile := getenv("ENTRA_SERVICE_PRINCIPAL")
	federatedFile := getenv("AZURE_FEDERATED_TOKEN_FILE")
	clientID, tenant := getenv("AZURE_CLIENT_ID"), getenv("AZURE_TENANT_ID")
	managed := getenv("ENTRA_MANAGED_IDENTITY")
	var workload []string // workload identity's variables that are set
	for _, name := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"} {
		if getenv(name) != "" {
			workload = append(workload, name)
		}
	}
	switch {
	case managed != "" && spFile != "":
		return errors.New("both ENTRA_MANAGED_IDENTITY and ENTRA_SERVICE_PRINCIPAL are set: unset ENTRA_SERVICE_PRINCIPAL to use managed identity, or ENTRA_MANAGED_IDENTITY to use the service principal")
	case managed != "" && len(workload) > 0:
		return fmt.Errorf("both ENTRA_MANAGED_IDENTITY and workload identity (%s) are set: unset ENTRA_MANAGED_IDENTITY to use workload identity, or remove the pod's label azure.workload.identity/use to use managed identity; a user-assigned managed identity is chosen with ENTRA_MANAGED_IDENTITY=client_id=<GUID>, never with AZURE_CLIENT_ID", strings.Join(workload, ", "))
	case managed != "" && getenv("AZURE_CLIENT_CERTIFICATE_PATH") != "":
		return errors.New("both ENTRA_MANAGED_IDENTITY and AZURE_CLIENT_CERTIFICATE_PATH are set: managed identity needs no certificate; unset AZURE_CLIENT_CERTIFICATE_PATH")
	case managed != "":
		_, err := loadManagedIdentity(getenv, "")
		return err
	case spFile == "" && federatedFile == "" && getenv("AZURE_CLIENT_SECRET") != "":
		// azidentity's EnvironmentCredential: name what was found, and where the secret goes instead.
		var found []string
		for _, name := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"} {
			if getenv(name) != "" {
				found = append(found, name)
			}
		}
		return fmt.Errorf("%s set, as for azidentity's environment credential, but this program does not read AZURE_CLIENT_SECRET (ENTRA_SERVICE_PRINCIPAL is not set): put the secret in a service principal file, the JSON \"az ad sp create-for-rbac\" prints ({\"appId\", \"displayName\", \"password\", \"tenant\"}), mount it from a Secret and set ENTRA_SERVICE_PRINCIPAL to its path", strings.Join(found, ", "))
	case spFile != "" && federatedFile != "":
		return errors.New("both ENTRA_SERVICE_PRINCIPAL and AZURE_FEDERATED_TOKEN_FILE are set: unset ENTRA_SERVICE_PRINCIPAL to use workload identity, or remove the pod's label azure.workload.identity/use to use the service principal")
	case spFile == "" && federatedFile == "" && clientID == "" && tenant == "":
		return errors.New("ENTRA_SERVICE_PRINCIPAL is not set (nor, for workload identity, AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE; nor, for managed identity, ENTRA_MANAGED_IDENTITY)")
	case spFile == "" && getenv("AZURE_CLIENT_CERTIFICATE_PATH") != "":
		return errors.New("AZURE_CLIENT_CERTIFICATE_PATH is set but ENTRA_SERVICE_PRINCIPAL is not: a certificate credential needs a service principal file with \"password\": null, for its appId and tenant")
	case spFile == "":
		var missing []string
		for _, v := range []struct{ name, value string }{
			{"AZURE_CLIENT_ID", clientID}, {"AZURE_TENANT_ID", tenant}, {"AZURE_FEDERATED_TOKEN_FILE", federatedFile},
		} {
			if v.value == "" {
				missing = append(missing, v.name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("workload identity: %s not set (ENTRA_SERVICE_PRINCIPAL is not set either): label the pod azure.workload.identity/use: \"true\" and annotate its service account with azure.workload.identity/client-id", strings.Join(missing, ", "))
		}
	}
	return nil
}

// clientSecret is the client credentials grant with a client secret, on the v1 endpoint.
type clientSecret struct {
	clientID string
	secret   string
}

// clientForm returns client_id and client_secret; url.Values.Encode escapes the secret exactly once,
// whatever it holds.
func (c *clientSecret) clientForm(string, time.Time) (url.Values, error) {
	return url.Values{"client_id": {c.clientID}, "client_secret": {c.secret}}, nil
}
func (c *clientSecret) v2() bool        { return false }
func (c *clientSecret) logAttrs() []any { return []any{"credential", "client secret"} }

// surroundingSpace describes the white space around the secret, such as `ends with "\n"`, or returns
// "" if there is none. It quotes only the white space, never the secret: Entra's secrets hold none, so
// it was most likely pasted with the secret, and Entra will refuse it as a wrong secret (AADSTS7000215).
func (c *clientSecret) surroundingSpace() string {
	lead := c.secret[:len(c.secret)-len(strings.TrimLeftFunc(c.secret, unicode.IsSpace))]
	trail := c.secret[len(strings.TrimRightFunc(c.secret, unicode.IsSpace)):]
	var parts []string
	if lead != "" {
		parts = append(parts, fmt.Sprintf("starts with %q", truncate(lead, 16)))
	}
	if trail != "" && len(lead) < len(c.secret) {
		parts = append(parts, fmt.Sprintf("ends with %q", truncate(trail, 16)))
	}
	return strings.Join(parts, " and ")
}

// explainRefusal changes err's hint, when Entra refused the secret (AADSTS7000215) and it has
// surrounding white space, to name that likely cause instead of the Value and Secret ID mix-up.
func (c *clientSecret) explainRefusal(err error) error {
	if e, ok := errors.AsType[*entraError](err); ok {
		if ws := c.surroundingSpace(); ws != "" {
			e.hints = map[int]string{7000215: "wrong client secret: it " + ws + ", most likely pasted with it: remove that from the service principal file's password"}
		}
	}
	return err
}
