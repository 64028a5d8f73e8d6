// Package entratest is a stand-in for Microsoft Entra ID's token endpoint, for tests and the demo: a TLS
// server on the loopback address, with a certificate from a test CA, that answers the client credentials
// grant as Entra does and records every request it receives.
//
// It issues v1.0 access tokens: RS256 JWTs with "aud", "iss" (https://sts.windows.net/{tid}/), "tid",
// "appid", "ver" 1.0, "iat", "nbf" and "exp", in a v1 response whose numbers are JSON strings. It refuses
// what Entra refuses with Entra's error bodies: an unknown tenant (AADSTS90002), client (AADSTS700016)
// or resource (AADSTS500011), a wrong client secret (AADSTS7000215), an expired one (AADSTS7000222).
// Tests can queue other responses ([Server.Enqueue]) to play a throttling, failing or misbehaving Entra,
// change the registrations while it serves ([Server.Change]), such as a rotated client secret, and give
// it a clock of their own ([Server.Now]) with tokens of any lifetime ([Server.TokenLifetime]). To play
// a tenant (or a node's IMDS) under load, it admits at most [Server.RateLimit] requests a second and
// refuses the rest with 429 and Retry-After, as Entra's throttling does, and logs every request
// ([Server.Log]) with its status.
//
// [MIServer] is a stand-in for the managed identity endpoints of Azure hosts: IMDS, App Service, the
// Azure Arc agent (its challenge included) and Service Fabric.
package entratest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// App is an application registration in the stand-in's tenant, with its credentials: a client secret,
// certificates, and federated credentials.
type App struct {
	ClientID      string
	DisplayName   string
	Secret        string
	SecretExpired bool                // answer AADSTS7000222 to the right secret
	Certificates  []*x509.Certificate // whose keys may sign client assertions
	Federated     []FederatedCredential
}

// FederatedCredential trusts tokens from an external identity provider, here the stand-in's own
// Kubernetes service account issuer (see [Server.ServiceAccountToken]).
type FederatedCredential struct {
	Issuer   string
	Subject  string // e.g. system:serviceaccount:NAMESPACE:NAME
	Audience string // api://AzureADTokenExchange
	// Keys returns the issuer's signing keys, as Entra fetches them at each exchange from the
	// issuer's OpenID discovery document (jwks_uri), such as a real cluster's /openid/v1/jwks;
	// nil: the stand-in cluster's key of [ServiceAccountToken]. An assertion whose key ID is not in
	// the set is refused with AADSTS7000272.
	Keys func() (jose.JSONWebKeySet, error)
}

// Request is one request the server received.
type Request struct {
	Method string
	Path   string
	Query  string // the raw query, which should be empty: the secret belongs in the body
	Header http.Header
	Form   url.Values // the parsed form body
	// RemoteAddr is the client's address and port, which tells connections apart.
	RemoteAddr string
	Time       time.Time // when it was received, by the server's clock
	Status     int       // the status answered; 0 while the answer is being made
}

// Response is a canned answer, served instead of the normal one (see [Server.Enqueue]).
type Response struct {
	Status int
	Header map[string]string // e.g. "Retry-After": "1"
	Body   string
	// Delay holds the response back, to test cancellation mid-request.
	Delay time.Duration
	// Then, when set, runs after the request is recorded and before the response is sent: a test's
	// chance to change the world between two attempts.
	Then func()
	// AfterBody, when set, is sent after the body, past the Content-Length, as a misbehaving server or
	// middlebox might; the connection is then closed.
	AfterBody string
}

// Server is a running stand-in. Its fields may be changed before the first request, and later only
// within [Server.Change].
type Server struct {
	// URL is the authority host to give the program: https://127.0.0.1:port/.
	URL string
	// TenantID is the tenant's GUID; TenantDomain its domain name. Both are accepted in the path.
	TenantID     string
	TenantDomain string
	// Apps are the registered applications, by client ID.
	Apps map[string]App
	// Audiences maps each known resource to the "aud" of the tokens issued for it.
	Audiences map[string]string
	// TokenLifetime is how long issued tokens are valid, from now; negative for expired tokens. As
	// Entra does, tokens have "iat" and "nbf" 5 minutes before now.
	TokenLifetime time.Duration
	// Now is the server's clock, for the tokens it issues and the assertions it checks; nil means
	// time.Now. A test with a simulated clock sets it to that clock's.
	Now func() time.Time
	// Answered, when set, is called after each response is sent, with the request and the status:
	// for a log of the requests as they are answered (the demo's -serve).
	Answered func(r Request, status int)
	// RateLimit, when positive, is how many requests a second the server admits: a token bucket that
	// holds as many and refills at that rate, by the real clock. A request that finds it empty is
	// answered 429 Too Many Requests with Retry-After: RetryAfter seconds (1 when zero) and an Entra
	// error body without an AADSTS code, before any check of what it carries.
	RateLimit  float64
	RetryAfter int
	// Log, when set, receives one line per request, once answered: its time by the server's clock (RFC
	// 3339, nanoseconds), status, client ID, and path, separated by spaces.
	Log io.Writer

	bucket   float64   // requests the rate limit admits now
	filled   time.Time // when bucket was last refilled
	srv      *httptest.Server
	config   sync.RWMutex // held for writing by Change, for reading while a request is answered
	mu       sync.Mutex
	requests []Request
	queue    []Response
	seenJTI  map[string]bool // of client assertions
}

// Default registrations of a new Server.
const (
	DefaultTenantID     = "72f988bf-0000-4000-8000-00000000c0de"
	DefaultTenantDomain = "contoso.onmicrosoft.com"
	DefaultClientID     = "0c7d5e1a-1111-4222-8333-444455556666"
	DefaultDisplayName  = "azure-rest-api-token-test"
	DefaultSecret       = "Qx~8Q~not-a-real-secret.7dWvY_zKp0"
	PrometheusResource  = "https://prometheus.monitor.azure.com"
	ManagementResource  = "https://management.azure.com/"
)

// NewServer starts a stand-in on 127.0.0.1 with one tenant, [DefaultClientID]'s app, and the resources
// [PrometheusResource] and [ManagementResource]. Close it when done.
func NewServer() (*Server, error) {
	return NewServerAt("127.0.0.1:0")
}

// NewServerAt is [NewServer] listening on addr, "IP:port" (port 0: any free one), whose certificate
// also names that IP: for clients elsewhere than on the loopback interface, such as pods that reach
// their node at their bridge's gateway address.
func NewServerAt(addr string) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("listen address %q: not an IP address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	leaf, err := serverCertificate(ip)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &Server{
		TenantID:     DefaultTenantID,
		TenantDomain: DefaultTenantDomain,
		Apps: map[string]App{DefaultClientID: {
			ClientID: DefaultClientID, DisplayName: DefaultDisplayName, Secret: DefaultSecret,
		}},
		Audiences: map[string]string{
			PrometheusResource: PrometheusResource,
			ManagementResource: ManagementResource,
		},
		TokenLifetime: 3599 * time.Second,
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	s.srv.Listener.Close()
	s.srv.Listener = ln
	s.srv.TLS = newServerTLSConfig(leaf)
	s.srv.StartTLS()
	s.URL = s.srv.URL + "/"
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Enqueue queues responses: each of the next requests gets the next of them instead of the normal
// answer, and is recorded all the same.
func (s *Server) Enqueue(rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, rs...)
}

// Change runs f, which may change the server's fields (a rotated secret, another token lifetime),
// while no request is being answered.
func (s *Server) Change(f func()) {
	s.config.Lock()
	defer s.config.Unlock()
	f()
}

// now returns the time by the server's clock.
func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Requests returns a copy of the requests received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	_ = r.ParseForm()
	req := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Form: r.PostForm, RemoteAddr: r.RemoteAddr, Time: s.now()}
	s.mu.Lock()
	i := len(s.requests)
	s.requests = append(s.requests, req)
	var canned *Response
	if len(s.queue) > 0 {
		canned = &s.queue[0]
		s.queue = s.queue[1:]
	} else if !s.admit() {
		ra := max(s.RetryAfter, 1)
		canned = &Response{Status: http.StatusTooManyRequests, Header: map[string]string{"Retry-After": strconv.Itoa(ra), "Content-Type": "application/json; charset=utf-8"},
			Body: string(ErrorBody(http.StatusTooManyRequests, "temporarily_unavailable", 0, "The service is temporarily unavailable: too many requests."))}
	}
	s.mu.Unlock()
	w = &statusRecorder{ResponseWriter: w, record: func(status int) { s.answered(i, status) }}
	if canned != nil {
		writeCanned(w, r, canned)
		if s.Answered != nil {
			s.Answered(req, canned.Status)
		}
		return
	}
	s.config.RLock()
	status, body := s.answer(r)
	s.config.RUnlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	if s.Answered != nil {
		s.Answered(req, status)
	}
}

// admit reports whether the rate limit admits one more request now, and takes it from the bucket. The
// caller holds s.mu.
func (s *Server) admit() bool {
	if s.RateLimit <= 0 {
		return true
	}
	now := time.Now()
	if s.filled.IsZero() {
		s.bucket = s.RateLimit
	} else {
		s.bucket = min(s.RateLimit, s.bucket+s.RateLimit*now.Sub(s.filled).Seconds())
	}
	s.filled = now
	if s.bucket < 1 {
		return false
	}
	s.bucket--
	return true
}

// answered records the status of request i and logs the request.
func (s *Server) answered(i, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &s.requests[i]
	r.Status = status
	if s.Log != nil {
		fmt.Fprintf(s.Log, "%s %d %s %s\n", r.Time.UTC().Format(time.RFC3339Nano), status, strconv.Quote(r.Form.Get("client_id")), strconv.Quote(r.Path))
	}
}

// statusRecorder calls record with the status of the response, once.
type statusRecorder struct {
	http.ResponseWriter
	record func(status int)
	done   bool
}

func (w *statusRecorder) WriteHeader(status int) {
	if !w.done {
		w.done = true
		w.record(status)
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Hijack, Flush).
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// refusal is an Entra error response.
type refusal struct {
	status int
	code   string
	aadsts int
	desc   string
}

func refuse(status int, code string, aadsts int, format string, args ...any) *refusal {
	return &refusal{status, code, aadsts, fmt.Sprintf(format, args...)}
}

// answer plays Entra's token endpoints for r, returning the status and JSON body: the v1 endpoint
// {tenant}/oauth2/token with a resource and a client secret, and the v2 endpoint
// {tenant}/oauth2/v2.0/token with a scope and a client secret or a client assertion.
func (s *Server) answer(r *http.Request) (int, []byte) {
	now := s.now()
	app, resource, v2, ref := s.authenticate(r, now)
	if ref != nil {
		return ref.status, ErrorBody(ref.status, ref.code, ref.aadsts, ref.desc)
	}
	exp := now.Add(s.TokenLifetime)
	token, err := SignToken(map[string]any{
		"aud": s.Audiences[resource], "iss": "https://sts.windows.net/" + s.TenantID + "/", "tid": s.TenantID,
		"appid": app.ClientID, "appidacr": "1", "oid": app.ClientID, "sub": app.ClientID, "ver": "1.0",
		"iat": now.Add(-5 * time.Minute).Unix(), "nbf": now.Add(-5 * time.Minute).Unix(), "exp": exp.Unix(),
	})
	if err != nil {
		return http.StatusInternalServerError, ErrorBody(http.StatusInternalServerError, "server_error", 0, err.Error())
	}
	if v2 {
		b, _ := json.Marshal(map[string]any{"token_type": "Bearer", "expires_in": int(s.TokenLifetime / time.Second),
			"ext_expires_in": int(s.TokenLifetime / time.Second), "access_token": token})
		return http.StatusOK, b
	}
	return http.StatusOK, tokenBody(token, "Bearer", resource, now, exp)
}

// authenticate checks r as Entra does and returns the app, the resource asked for and whether the v2
// endpoint was used; or the refusal.
func (s *Server) authenticate(r *http.Request, now time.Time) (App, string, bool, *refusal) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	tenant, v1 := strings.CutSuffix(path, "/oauth2/token")
	if !v1 {
		var v2 bool
		if tenant, v2 = strings.CutSuffix(path, "/oauth2/v2.0/token"); !v2 {
			return App{}, "", false, refuse(404, "invalid_request", 900561, "The endpoint only accepts POST requests.")
		}
	}
	form := r.PostForm
	switch {
	case r.Method != http.MethodPost:
		return App{}, "", false, refuse(404, "invalid_request", 900561, "The endpoint only accepts POST requests.")
	case tenant != s.TenantID && tenant != s.TenantDomain:
		return App{}, "", false, refuse(400, "invalid_request", 90002,
			"Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant)
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"):
		return App{}, "", false, refuse(400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
	case form.Get("grant_type") != "client_credentials":
		return App{}, "", false, refuse(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
	}
	app, ok := s.Apps[form.Get("client_id")]
	if !ok {
		return App{}, "", false, refuse(400, "unauthorized_client", 700016,
			"Application with identifier '%s' was not found in the directory '%s'.", form.Get("client_id"), s.TenantDomain)
	}
	resource := form.Get("resource")
	if !v1 {
		var ok bool
		if resource, ok = strings.CutSuffix(form.Get("scope"), "/.default"); !ok || form.Has("resource") {
			return App{}, "", false, refuse(400, "invalid_scope", 1002012,
				"The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", form.Get("scope"))
		}
	}
	var ref *refusal
	switch {
	case form.Has("client_secret") && form.Has("client_assertion"):
		ref = refuse(400, "invalid_request", 7000219, "Only one client credential may be presented.")
	case form.Has("client_secret"):
		ref = s.checkSecret(app, form)
	case form.Has("client_assertion") && !v1:
		ref = s.checkAssertion(app, form, "https://"+r.Host+r.URL.Path, now)
	default:
		ref = refuse(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	}
	if ref != nil {
		return App{}, "", false, ref
	}
	if _, ok := s.Audiences[resource]; !ok {
		return App{}, "", false, refuse(400, "invalid_resource", 500011,
			"The resource principal named %s was not found in the tenant named %s.", resource, s.TenantDomain)
	}
	return app, resource, !v1, nil
}

// checkSecret checks the client secret in form against app's.
func (s *Server) checkSecret(app App, form url.Values) *refusal {
	if app.Secret == "" || len(form["client_secret"]) != 1 || form.Get("client_secret") != app.Secret {
		return refuse(401, "invalid_client", 7000215,
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", app.ClientID)
	}
	if app.SecretExpired {
		return refuse(401, "invalid_client", 7000222, "The provided client secret keys for app '%s' are expired.", app.ClientID)
	}
	return nil
}

// TokenBody returns a v1 token response as Entra sends it: every number a JSON string.
func TokenBody(token, tokenType, resource string, exp time.Time) []byte {
	return tokenBody(token, tokenType, resource, time.Now(), exp)
}

func tokenBody(token, tokenType, resource string, now, exp time.Time) []byte {
	lifetime := strconv.FormatInt(int64(exp.Sub(now)/time.Second), 10)
	b, _ := json.Marshal(map[string]string{
		"token_type": tokenType, "expires_in": lifetime, "ext_expires_in": lifetime,
		"expires_on": strconv.FormatInt(exp.Unix(), 10), "not_before": strconv.FormatInt(now.Unix(), 10),
		"resource": resource, "access_token": token,
	})
	return b
}

// ErrorBody returns an Entra error response body for the AADSTS code (none when 0): error,
// a multi-line error_description, error_codes, timestamp, trace_id, correlation_id and error_uri.
func ErrorBody(status int, code string, aadsts int, description string) []byte {
	traceID, correlationID := newGUID(), newGUID()
	ts := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	e := map[string]any{
		"error":          code,
		"timestamp":      ts,
		"trace_id":       traceID,
		"correlation_id": correlationID,
	}
	if aadsts != 0 {
		description = fmt.Sprintf("AADSTS%d: %s", aadsts, description)
		e["error_codes"] = []int{aadsts}
		e["error_uri"] = fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", aadsts)
	}
	e["error_description"] = fmt.Sprintf("%s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", description, traceID, correlationID, ts)
	b, _ := json.Marshal(e)
	return b
}

var (
	signingKeyOnce sync.Once
	signingKey     *rsa.PrivateKey
	signingKeyErr  error
)

// SignToken returns a compact RS256 JWT with claims, signed by the stand-in's key, whose header names
// a key ID as Entra's do.
func SignToken(claims map[string]any) (string, error) {
	signingKeyOnce.Do(func() { signingKey, signingKeyErr = rsa.GenerateKey(rand.Reader, 2048) })
	if signingKeyErr != nil {
		return "", signingKeyErr
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: signingKey},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "entratest"))
	if err != nil {
		return "", err
	}
	return jwt.Signed(signer).Claims(maps.Clone(claims)).Serialize()
}

// newGUID returns a random version 4 UUID, as Entra's trace and correlation IDs are.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// writeCanned answers r with the canned response c (see [Response]).
func writeCanned(w http.ResponseWriter, r *http.Request, c *Response) {
	if c.Then != nil {
		c.Then()
	}
	if c.Delay > 0 {
		select {
		case <-time.After(c.Delay):
		case <-r.Context().Done():
			return
		}
	}
	for k, v := range c.Header {
		w.Header().Set(k, v)
	}
	if c.AfterBody != "" {
		w.Header().Set("Content-Length", strconv.Itoa(len(c.Body)))
	}
	w.WriteHeader(c.Status)
	_, _ = w.Write([]byte(c.Body))
	if c.AfterBody != "" {
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		if conn, _, err := rc.Hijack(); err == nil {
			_, _ = conn.Write([]byte(c.AfterBody))
			time.Sleep(100 * time.Millisecond) // for the client to find it on an idle connection
			conn.Close()
		}
	}
}
