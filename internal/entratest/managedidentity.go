package entratest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kind is the kind of managed identity endpoint a [MIServer] plays.
type Kind int

const (
	// IMDS is the Azure Instance Metadata Service of a VM or scale set (AKS nodes included):
	// GET http://169.254.169.254/metadata/identity/oauth2/token, plain HTTP.
	IMDS Kind = iota
	// AppService is App Service's, Functions' and Container Apps' IDENTITY_ENDPOINT, plain HTTP on
	// the loopback address, which wants X-IDENTITY-HEADER.
	AppService
	// Arc is the Azure Arc agent (himds), plain HTTP on 127.0.0.1:40342, with its challenge: a first
	// request is answered 401 with "WWW-Authenticate: Basic realm=<key file>", and the second must
	// carry the key file's content in "Authorization: Basic".
	Arc
	// ServiceFabric is Service Fabric's endpoint: HTTPS with a self-signed certificate, named by its
	// SHA-1 thumbprint ([MIServer.Thumbprint]), which wants the header Secret.
	ServiceFabric
)

func (k Kind) String() string {
	return [...]string{"IMDS", "App Service", "Azure Arc", "Service Fabric"}[k]
}

// ManagedIdentity is an identity the host holds: its system-assigned one, or a user-assigned one.
type ManagedIdentity struct {
	ClientID   string
	ObjectID   string
	ResourceID string // user-assigned: /subscriptions/.../userAssignedIdentities/NAME
}

// Default identities of a new MIServer.
var (
	SystemIdentity = ManagedIdentity{ClientID: "5a0f7e1b-aaaa-4bbb-8ccc-000000000001", ObjectID: "7d1c2b3a-aaaa-4bbb-8ccc-000000000002"}
	UserIdentity   = ManagedIdentity{ClientID: "5a0f7e1b-aaaa-4bbb-8ccc-000000000003", ObjectID: "7d1c2b3a-aaaa-4bbb-8ccc-000000000004",
		ResourceID: "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg-test/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-test"}
)

// MIServer is a stand-in for a managed identity endpoint of one [Kind] on the loopback address. It
// answers as the real one does, checks every request as the real one would (method, path,
// api-version, headers, the user-assigned selector in its own spelling: a selector it does not know is
// ignored, and the system-assigned identity answers, as the real endpoints do), and records every
// request it receives.
type MIServer struct {
	Kind Kind
	// URL is what the program is pointed at: for IMDS the authority host
	// (AZURE_POD_IDENTITY_AUTHORITY_HOST, http://127.0.0.1:port), for the others the endpoint
	// (IDENTITY_ENDPOINT).
	URL string
	// Secret is the IDENTITY_HEADER App Service and Service Fabric want.
	Secret string
	// KeyDir is where the Azure Arc stand-in writes its key files.
	KeyDir string
	// TenantID is the tenant of the tokens.
	TenantID string
	// System is the host's system-assigned identity, nil for none; Users its user-assigned ones.
	System *ManagedIdentity
	Users  []ManagedIdentity
	// Audiences maps each known resource to the "aud" of its tokens.
	Audiences map[string]string
	// TokenLifetime is how long issued tokens are valid (default 24 hours, as managed identity's).
	TokenLifetime time.Duration
	// CacheUntil, when not zero, makes the stand-in cache tokens as the platform does: it hands out the
	// token it last issued for the same identity and resource, the same token with the same expiry,
	// until the token has less than CacheUntil left.
	CacheUntil time.Duration
	// ExpiresOn is how expires_on is written: "string" (seconds since the epoch as a JSON string, as
	// IMDS sends it; the default), "number", "date" (App Service's old "01/02/2006 15:04:05 +00:00"),
	// "iso" (ISO 8601 with seven fractional digits) or "none"; expires_in follows: a string, a number
	// for "number", absent for "none".
	ExpiresOn string
	// IgnoreSelector makes the stand-in hand out the system-assigned identity whatever the request
	// selects, as an endpoint does with a selector spelled its way.
	IgnoreSelector bool
	// Now is the stand-in's clock, nil for time.Now.
	Now func() time.Time

	srv        *httptest.Server
	thumbprint string
	mu         sync.Mutex
	requests   []Request
	queue      []Response
	keys       map[string]bool // Azure Arc keys handed out
	cache      map[string]cached
	issued     int
}

type cached struct {
	token string
	exp   time.Time
}

// NewMIServer starts a stand-in of kind on 127.0.0.1 with [SystemIdentity], [UserIdentity], the
// resources [PrometheusResource] and [ManagementResource], and for Azure Arc a key directory keyDir
// (ignored for the other kinds). Close it when done.
func NewMIServer(kind Kind, keyDir string) (*MIServer, error) {
	return NewMIServerAt(kind, keyDir, "127.0.0.1:0")
}

// NewMIServerAt is [NewMIServer] listening on addr ("IP:port", port 0 for any), such as a pod
// bridge's gateway, where pods reach it as they reach IMDS on a node.
func NewMIServerAt(kind Kind, keyDir, addr string) (*MIServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	sys := SystemIdentity
	m := &MIServer{
		Kind: kind, Secret: "identity-header-" + newGUID(), KeyDir: keyDir, TenantID: DefaultTenantID,
		System: &sys, Users: []ManagedIdentity{UserIdentity},
		Audiences:     map[string]string{PrometheusResource: PrometheusResource, ManagementResource: ManagementResource},
		TokenLifetime: 24 * time.Hour,
		keys:          map[string]bool{},
		cache:         map[string]cached{},
	}
	m.srv = httptest.NewUnstartedServer(http.HandlerFunc(m.serveHTTP))
	m.srv.Listener.Close()
	m.srv.Listener = ln
	m.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are a test's point, not news
	if kind == ServiceFabric {
		cert, err := selfSignedCertificate()
		if err != nil {
			m.srv.Close()
			return nil, err
		}
		sum := sha1.Sum(cert.Certificate[0])
		m.thumbprint = strings.ToUpper(hex.EncodeToString(sum[:]))
		m.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		m.srv.StartTLS()
	} else {
		m.srv.Start()
	}
	switch kind {
	case IMDS:
		m.URL = m.srv.URL
	case AppService:
		m.URL = m.srv.URL + "/msi/token"
	case Arc:
		m.URL = m.srv.URL + "/metadata/identity/oauth2/token"
	case ServiceFabric:
		m.URL = m.srv.URL + "/metadata/identity/oauth2/token"
	}
	return m, nil
}

// Close stops the server.
func (m *MIServer) Close() { m.srv.Close() }

// Thumbprint is the SHA-1 thumbprint of a Service Fabric stand-in's certificate, in hexadecimal, for
// IDENTITY_SERVER_THUMBPRINT.
func (m *MIServer) Thumbprint() string { return m.thumbprint }

// Enqueue queues responses, as [Server.Enqueue] does.
func (m *MIServer) Enqueue(rs ...Response) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queue = append(m.queue, rs...)
}

// Requests returns a copy of the requests received so far, in order.
func (m *MIServer) Requests() []Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.requests)
}

// Keys returns the Azure Arc keys handed out so far, which must never be printed.
func (m *MIServer) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.keys {
		keys = append(keys, k)
	}
	return keys
}

// Issued returns how many new tokens the stand-in has signed (a cached token handed out again is not
// one).
func (m *MIServer) Issued() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.issued
}

func (m *MIServer) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *MIServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.requests = append(m.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), RemoteAddr: r.RemoteAddr, Time: m.now()})
	var canned *Response
	if len(m.queue) > 0 {
		canned = &m.queue[0]
		m.queue = m.queue[1:]
	}
	m.mu.Unlock()
	if canned != nil {
		writeCanned(w, r, canned)
		return
	}
	status, header, body := m.answer(r)
	for k, v := range header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// miError returns an error body in the OAuth shape IMDS, Azure Arc and Service Fabric use, or App
// Service's own shape.
func (m *MIServer) miError(status int, code, description string) (int, map[string]string, []byte) {
	if m.Kind == AppService {
		b, _ := json.Marshal(map[string]any{"statusCode": status, "message": description, "correlationId": newGUID()})
		return status, nil, b
	}
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": description})
	return status, nil, b
}

// answer plays the endpoint for r.
func (m *MIServer) answer(r *http.Request) (int, map[string]string, []byte) {
	q := r.URL.Query()
	wantPath, wantVersion := "/metadata/identity/oauth2/token", map[Kind]string{IMDS: "2018-02-01", AppService: "2019-08-01", Arc: "2020-06-01", ServiceFabric: "2019-07-01-preview"}[m.Kind]
	if m.Kind == AppService {
		wantPath = "/msi/token"
	}
	switch {
	case r.URL.Path != wantPath:
		return m.miError(http.StatusNotFound, "not_found", "no such path")
	case r.Method != http.MethodGet:
		return m.miError(http.StatusMethodNotAllowed, "invalid_request", "the method must be GET")
	case (m.Kind == IMDS || m.Kind == Arc) && r.Header.Get("Metadata") != "true":
		return m.miError(http.StatusBadRequest, "invalid_request", "Required metadata header not specified")
	case m.Kind == IMDS && r.Header.Get("X-Forwarded-For") != "":
		return m.miError(http.StatusBadRequest, "invalid_request", "Request contains X-Forwarded-For header")
	case m.Kind == AppService && r.Header.Get("X-IDENTITY-HEADER") != m.Secret:
		return m.miError(http.StatusUnauthorized, "unauthorized", "The X-IDENTITY-HEADER is missing or invalid")
	case m.Kind == ServiceFabric && r.Header.Get("Secret") != m.Secret:
		return m.miError(http.StatusUnauthorized, "unauthorized", "The Secret header is missing or invalid")
	case q.Get("api-version") != wantVersion:
		return m.miError(http.StatusBadRequest, "invalid_request", "Invalid or missing api-version")
	case q.Get("resource") == "":
		return m.miError(http.StatusBadRequest, "invalid_request", "Required query variable 'resource' is missing")
	}
	if m.Kind == Arc {
		if status, header, body, ok := m.arcChallenge(r); !ok {
			return status, header, body
		}
	}
	id, ok := m.identity(q)
	if !ok {
		return m.miError(http.StatusBadRequest, "invalid_request", "Identity not found")
	}
	aud, ok := m.Audiences[q.Get("resource")]
	if !ok {
		return m.miError(http.StatusBadRequest, "invalid_resource", "AADSTS500011: The resource principal named "+q.Get("resource")+" was not found in the tenant.")
	}
	now := m.now()
	token, exp, err := m.token(id, q.Get("resource"), aud, now)
	if err != nil {
		return m.miError(http.StatusInternalServerError, "server_error", "signing failed")
	}
	return http.StatusOK, nil, m.tokenBody(token, id, q.Get("resource"), now, exp)
}

// arcChallenge plays the Azure Arc agent's challenge: without Authorization it writes a new key file
// and answers 401 naming it; with it, the key must be one it handed out. ok means go on.
func (m *MIServer) arcChallenge(r *http.Request) (status int, header map[string]string, body []byte, ok bool) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		key := newGUID() + newGUID()
		path := filepath.Join(m.KeyDir, newGUID()+".key")
		if err := os.WriteFile(path, []byte(key), 0o600); err != nil {
			status, _, body = m.miError(http.StatusInternalServerError, "server_error", "writing the key file failed")
			return status, nil, body, false
		}
		m.mu.Lock()
		m.keys[key] = true
		m.mu.Unlock()
		status, _, body = m.miError(http.StatusUnauthorized, "unauthorized", "A challenge key was created")
		return status, map[string]string{"WWW-Authenticate": "Basic realm=" + path}, body, false
	}
	key, found := strings.CutPrefix(auth, "Basic ")
	m.mu.Lock()
	known := found && m.keys[key]
	m.mu.Unlock()
	if !known {
		status, _, body = m.miError(http.StatusUnauthorized, "unauthorized", "The key is not valid")
		return status, nil, body, false
	}
	return 0, nil, nil, true
}

// identity returns the identity the query selects, with the endpoint's own spelling: IMDS and Azure
// Arc client_id, object_id, msi_res_id; App Service client_id, principal_id or object_id, mi_res_id.
// Another spelling is ignored, and selects the system-assigned identity, as the real endpoints do.
func (m *MIServer) identity(q url.Values) (ManagedIdentity, bool) {
	resParam, objParams := "msi_res_id", []string{"object_id"}
	if m.Kind == AppService {
		resParam, objParams = "mi_res_id", []string{"principal_id", "object_id"}
	}
	match := func(f func(ManagedIdentity) string, v string) (ManagedIdentity, bool) {
		for _, u := range m.Users {
			if strings.EqualFold(f(u), v) {
				return u, true
			}
		}
		return ManagedIdentity{}, false
	}
	if m.IgnoreSelector {
		q = url.Values{}
	}
	if v := q.Get("client_id"); v != "" {
		return match(func(u ManagedIdentity) string { return u.ClientID }, v)
	}
	for _, p := range objParams {
		if v := q.Get(p); v != "" {
			return match(func(u ManagedIdentity) string { return u.ObjectID }, v)
		}
	}
	if v := q.Get(resParam); v != "" {
		return match(func(u ManagedIdentity) string { return u.ResourceID }, v)
	}
	if m.System == nil {
		return ManagedIdentity{}, false
	}
	return *m.System, true
}

// token returns a token for id and resource, from the cache when [MIServer.CacheUntil] says so.
func (m *MIServer) token(id ManagedIdentity, resource, aud string, now time.Time) (string, time.Time, error) {
	key := id.ClientID + " " + resource
	m.mu.Lock()
	c, ok := m.cache[key]
	m.mu.Unlock()
	if m.CacheUntil > 0 && ok && c.exp.Sub(now) >= m.CacheUntil {
		return c.token, c.exp, nil
	}
	exp := now.Add(m.TokenLifetime)
	claims := map[string]any{
		"aud": aud, "iss": "https://sts.windows.net/" + m.TenantID + "/", "tid": m.TenantID,
		"appid": id.ClientID, "appidacr": "2", "oid": id.ObjectID, "sub": id.ObjectID, "idtyp": "app", "ver": "1.0",
		"iat": now.Add(-5 * time.Minute).Unix(), "nbf": now.Add(-5 * time.Minute).Unix(), "exp": exp.Unix(),
	}
	if id.ResourceID != "" {
		claims["xms_mirid"] = id.ResourceID
	}
	token, err := SignToken(claims)
	if err != nil {
		return "", time.Time{}, err
	}
	m.mu.Lock()
	m.cache[key] = cached{token, exp}
	m.issued++
	m.mu.Unlock()
	return token, exp, nil
}

// tokenBody returns the token response, expires_on and expires_in written as [MIServer.ExpiresOn]
// says.
func (m *MIServer) tokenBody(token string, id ManagedIdentity, resource string, now, exp time.Time) []byte {
	body := map[string]any{"access_token": token, "token_type": "Bearer", "resource": resource, "client_id": id.ClientID,
		"not_before": strconv.FormatInt(now.Add(-5*time.Minute).Unix(), 10)}
	in := int64(exp.Sub(now) / time.Second)
	switch m.ExpiresOn {
	case "", "string":
		body["expires_on"], body["expires_in"] = strconv.FormatInt(exp.Unix(), 10), strconv.FormatInt(in, 10)
	case "number":
		body["expires_on"], body["expires_in"] = exp.Unix(), in
	case "date":
		body["expires_on"], body["expires_in"] = exp.UTC().Format("01/02/2006 15:04:05 +00:00"), strconv.FormatInt(in, 10)
	case "iso":
		body["expires_on"], body["expires_in"] = exp.UTC().Format("2006-01-02T15:04:05.0000000+00:00"), strconv.FormatInt(in, 10)
	case "none":
	default:
		panic(fmt.Sprintf("entratest: unknown ExpiresOn %q", m.ExpiresOn))
	}
	b, _ := json.Marshal(body)
	return b
}

// selfSignedCertificate returns a self-signed certificate for 127.0.0.1, as Service Fabric's
// endpoint has one of its own.
func selfSignedCertificate() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "service fabric stand-in"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
