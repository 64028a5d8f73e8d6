package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// pemOptions describe the PEM file of a certificate credential.
type pemOptions struct {
	key                 crypto.Signer // default: a 2048-bit RSA key
	keyForm             string        // "PRIVATE KEY" (PKCS#8, default), "RSA PRIVATE KEY" or "EC PRIVATE KEY"
	notBefore, notAfter time.Time     // default: valid from an hour ago for a year
	otherCertFirst      bool          // put an unrelated certificate (a CA, say) before the leaf
	noKey, noCert       bool
	wrongKey            bool // a key that is not the certificate's
	encrypted           string
	unregistered        bool // do not register the certificate with the app
	viaEnv              bool // name the PEM with AZURE_CLIENT_CERTIFICATE_PATH, not fileWithCertAndPrivateKey
}

// useCertificate gives the fixture a certificate credential: a PEM file, the certificate registered
// on the app, and a service principal file with "password": null. f.secret becomes a piece of the
// private key, which must never be printed.
func (f *fixture) useCertificate(o pemOptions) {
	f.t.Helper()
	if o.key == nil {
		o.key = must(entratest.RSAKey(2048))
	}
	if o.notBefore.IsZero() {
		o.notBefore, o.notAfter = time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0)
	}
	cert := must(entratest.NewCertificate(o.key, o.notBefore, o.notAfter))
	if !o.unregistered {
		app := f.srv.Apps[entratest.DefaultClientID]
		app.Certificates = append(app.Certificates, cert)
		f.srv.Apps[entratest.DefaultClientID] = app
	}
	var blocks []*pem.Block
	if o.otherCertFirst {
		other := must(entratest.NewCertificate(must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)), o.notBefore, o.notAfter))
		blocks = append(blocks, &pem.Block{Type: "CERTIFICATE", Bytes: other.Raw})
	}
	if !o.noCert {
		blocks = append(blocks, &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	}
	key := o.key
	if o.wrongKey {
		key = must(entratest.RSAKey(3072))
	}
	keyBlock := encodeKey(f.t, key, o.keyForm)
	f.secret = ""
	f.keyMaterial = keyMaterial(key, keyBlock)
	switch o.encrypted {
	case "pkcs8":
		keyBlock = &pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: keyBlock.Bytes}
	case "legacy":
		keyBlock.Headers = map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}
	}
	if !o.noKey {
		blocks = append(blocks, keyBlock)
	}
	var data []byte
	for _, b := range blocks {
		data = append(data, pem.EncodeToMemory(b)...)
	}
	pemFile := filepath.Join(f.dir, "cert.pem")
	mustDo(f.t, os.WriteFile(pemFile, data, 0o600))
	sp := map[string]any{"appId": entratest.DefaultClientID, "displayName": entratest.DefaultDisplayName,
		"password": nil, "tenant": entratest.DefaultTenantID, "fileWithCertAndPrivateKey": pemFile}
	if o.viaEnv {
		sp["fileWithCertAndPrivateKey"] = "/home/someone/tmpk3x9.pem"
		f.env["AZURE_CLIENT_CERTIFICATE_PATH"] = pemFile
	}
	f.writeServicePrincipal(sp)
}

// keyMaterial returns the forms in which a leaked private key could show: each line of its PEM body,
// and its private numbers in base64, hex and decimal.
func keyMaterial(key crypto.Signer, block *pem.Block) []string {
	lines := strings.Split(string(pem.EncodeToMemory(block)), "\n")
	out := lines[1 : len(lines)-2] // without the BEGIN and END lines
	var private []*big.Int
	switch k := key.(type) {
	case *rsa.PrivateKey:
		private = append([]*big.Int{k.D}, k.Primes...)
	case *ecdsa.PrivateKey:
		if b, err := k.Bytes(); err == nil {
			private = append(private, new(big.Int).SetBytes(b))
		}
	}
	for _, n := range private {
		b := n.Bytes()
		out = append(out, base64.StdEncoding.EncodeToString(b)[:32], base64.RawURLEncoding.EncodeToString(b)[:32],
			hex.EncodeToString(b)[:32], n.String()[:32])
	}
	return out
}

func encodeKey(t *testing.T, key crypto.Signer, form string) *pem.Block {
	t.Helper()
	switch form {
	case "RSA PRIVATE KEY":
		return &pem.Block{Type: form, Bytes: x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))}
	case "EC PRIVATE KEY":
		return &pem.Block{Type: form, Bytes: must(x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey)))}
	}
	return &pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))}
}

// useWorkloadIdentity gives the fixture workload identity federation as the AKS webhook sets it up:
// a federated credential on the app, a projected service account token with claims over the defaults,
// and the webhook's variables instead of ENTRA_SERVICE_PRINCIPAL.
func (f *fixture) useWorkloadIdentity(claims map[string]any) {
	f.t.Helper()
	app := f.srv.Apps[entratest.DefaultClientID]
	app.Federated = []entratest.FederatedCredential{{
		Issuer: entratest.ServiceAccountIssuer, Subject: entratest.ServiceAccountSubject, Audience: entratest.TokenExchangeAudience,
	}}
	f.srv.Apps[entratest.DefaultClientID] = app
	token := must(entratest.ServiceAccountToken(claims))
	tokenFile := filepath.Join(f.dir, "azure-identity-token")
	mustDo(f.t, os.WriteFile(tokenFile, []byte(token), 0o600))
	delete(f.env, "ENTRA_SERVICE_PRINCIPAL")
	f.env["AZURE_CLIENT_ID"] = entratest.DefaultClientID
	f.env["AZURE_TENANT_ID"] = entratest.DefaultTenantID
	f.env["AZURE_FEDERATED_TOKEN_FILE"] = tokenFile
	f.secret = token[len(token)-40:] // the signature: no part of the token may be printed
}

// wantAssertionRequest checks the last request is a v2 client credentials request with a client
// assertion, and returns its form.
func wantAssertionRequest(t *testing.T, f *fixture, resource string) url.Values {
	t.Helper()
	reqs := f.srv.Requests()
	r := reqs[len(reqs)-1]
	if diff := cmp.Diff("POST /"+entratest.DefaultTenantID+"/oauth2/v2.0/token", r.Method+" "+r.Path); diff != "" {
		t.Errorf("request line (-want +got):\n%s", diff)
	}
	want := url.Values{
		"grant_type":            {"client_credentials"},
		"client_id":             {entratest.DefaultClientID},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      r.Form["client_assertion"],
		"scope":                 {resource + "/.default"},
	}
	if diff := cmp.Diff(want, r.Form); diff != "" {
		t.Errorf("form (-want +got):\n%s", diff)
	}
	return r.Form
}

// checkCertificateAssertion checks the client assertion against Microsoft's certificate-credentials
// page: PS256, typ JWT, x5t#S256, aud the endpoint, iss and sub the client ID, jti, nbf, iat, and an
// exp at most 10 minutes after nbf.
func checkCertificateAssertion(t *testing.T, f *fixture, out string) {
	t.Helper()
	form := wantAssertionRequest(t, f, entratest.PrometheusResource)
	parsed, err := jwt.ParseSigned(form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.PS256})
	if err != nil {
		t.Fatalf("client assertion: %v", err)
	}
	h := parsed.Headers[0]
	cert := f.srv.Apps[entratest.DefaultClientID].Certificates[0]
	gotHeader := map[string]any{"alg": h.Algorithm, "typ": h.ExtraHeaders[jose.HeaderType], "x5t#S256": h.ExtraHeaders["x5t#S256"]}
	wantHeader := map[string]any{"alg": "PS256", "typ": "JWT", "x5t#S256": entratest.Thumbprint(cert)}
	if diff := cmp.Diff(wantHeader, gotHeader); diff != "" {
		t.Errorf("assertion header (-want +got):\n%s", diff)
	}
	var c jwt.Claims
	if err := parsed.Claims(cert.PublicKey, &c); err != nil {
		t.Fatalf("assertion signature: %v", err)
	}
	endpoint := f.srv.URL + entratest.DefaultTenantID + "/oauth2/v2.0/token"
	got := []any{[]string(c.Audience), c.Issuer, c.Subject, c.ID != "", c.IssuedAt != nil, c.NotBefore != nil}
	if diff := cmp.Diff([]any{[]string{endpoint}, entratest.DefaultClientID, entratest.DefaultClientID, true, true, true}, got); diff != "" {
		t.Errorf("assertion claims aud, iss, sub, has jti, iat, nbf (-want +got):\n%s", diff)
	}
	if life := c.Expiry.Time().Sub(c.NotBefore.Time()); life <= 0 || life > 10*time.Minute {
		t.Errorf("assertion valid for %v, want at most 10m", life)
	}
	if !strings.Contains(out, "credential=certificate") || !strings.Contains(out, "certificate_x5t_s256="+entratest.Thumbprint(cert)) {
		t.Errorf("the log does not say a certificate is used")
	}
}

func TestCertificate(t *testing.T) {
	t.Parallel()
	cert := func(o pemOptions) func(*fixture) { return func(f *fixture) { f.useCertificate(o) } }
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := entratest.RSAKey(1024)
	if err != nil {
		t.Fatal(err)
	}
	runTable(t, []runCase{
		{name: "PKCS#8 key, fileWithCertAndPrivateKey", wantRequests: 1, setup: cert(pemOptions{}), check: checkCertificateAssertion},
		{name: "PKCS#1 key, AZURE_CLIENT_CERTIFICATE_PATH", wantRequests: 1,
			setup: cert(pemOptions{keyForm: "RSA PRIVATE KEY", viaEnv: true}), check: checkCertificateAssertion},
		{name: "chain with another certificate first", wantRequests: 1, setup: cert(pemOptions{otherCertFirst: true}), check: checkCertificateAssertion},
		{name: "resource with a trailing slash gives a double slash", wantRequests: 1,
			setup: func(f *fixture) {
				f.useCertificate(pemOptions{})
				f.env["AZURE_RESOURCE"] = entratest.ManagementResource
			},
			check: func(t *testing.T, f *fixture, _ string) {
				wantAssertionRequest(t, f, entratest.ManagementResource)
				if got := f.srv.Requests()[0].Form.Get("scope"); got != "https://management.azure.com//.default" {
					t.Errorf("scope %q", got)
				}
			}},
		{name: "retry signs a new assertion", wantRequests: 2,
			setup: func(f *fixture) {
				f.useCertificate(pemOptions{})
				f.srv.Enqueue(errorResponse(503, "temporarily_unavailable", 0))
			},
			check: func(t *testing.T, f *fixture, _ string) {
				var jtis []string
				for _, r := range f.srv.Requests() {
					parsed := must(jwt.ParseSigned(r.Form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.PS256}))
					var c jwt.Claims
					mustDo(t, parsed.UnsafeClaimsWithoutVerification(&c))
					jtis = append(jtis, c.ID)
				}
				if jtis[0] == jtis[1] {
					t.Errorf("the retry sent the same jti %q", jtis[0])
				}
			}},
		{name: "RSA-PSS-only key", wantExit: 2, wantOut: []string{"RSA-PSS"},
			setup: func(f *fixture) {
				f.useCertificate(pemOptions{})
				mustDo(f.t, os.WriteFile(filepath.Join(f.dir, "cert.pem"), []byte(rsaPSSKeyPEM), 0o600))
			}},
		{name: "PKCS#12 file", wantExit: 2, wantOut: []string{"PKCS#12", "openssl pkcs12"},
			setup: func(f *fixture) {
				f.useCertificate(pemOptions{})
				mustDo(f.t, os.WriteFile(filepath.Join(f.dir, "cert.pem"), []byte{0x30, 0x82, 0x0a, 0x01, 0x02, 0x01, 0x03}, 0o600))
			}},

		// Before any request.
		{name: "no private key", wantExit: 2, setup: cert(pemOptions{noKey: true}), wantOut: []string{"no private key"}},
		{name: "no certificate", wantExit: 2, setup: cert(pemOptions{noCert: true}), wantOut: []string{"no certificate"}},
		{name: "key does not match the certificate", wantExit: 2, setup: cert(pemOptions{wrongKey: true}), wantOut: []string{"matches none of the 1 certificates"}},
		{name: "encrypted PKCS#8 key", wantExit: 2, setup: cert(pemOptions{encrypted: "pkcs8"}), wantOut: []string{"encrypted"}},
		{name: "encrypted PKCS#1 key", wantExit: 2, setup: cert(pemOptions{keyForm: "RSA PRIVATE KEY", encrypted: "legacy"}), wantOut: []string{"encrypted"}},
		{name: "expired certificate", wantExit: 2, setup: cert(pemOptions{notBefore: time.Now().AddDate(-1, 0, 0), notAfter: time.Now().Add(-49 * time.Hour)}),
			wantOut: []string{"expired 49h0m", "ago"}},
		{name: "certificate not yet valid", wantExit: 2, setup: cert(pemOptions{notBefore: time.Now().Add(3 * time.Hour), notAfter: time.Now().AddDate(1, 0, 0)}),
			wantOut: []string{"not valid for another", "(from 20"}},
		{name: "EC key in SEC 1 form", wantExit: 2, setup: cert(pemOptions{key: ecKey, keyForm: "EC PRIVATE KEY"}), wantOut: []string{"ECDSA P-256", "only RSA"}},
		{name: "EC key in PKCS#8 form", wantExit: 2, setup: cert(pemOptions{key: ecKey}), wantOut: []string{"only RSA"}},
		{name: "1024-bit RSA key", wantExit: 2, setup: cert(pemOptions{key: rsa1024}), wantOut: []string{"1024-bit", "at least 2048"}},
		{name: "certificate file unreadable", wantExit: 1,
			setup: func(f *fixture) {
				f.useCertificate(pemOptions{viaEnv: true})
				f.env["AZURE_CLIENT_CERTIFICATE_PATH"] = filepath.Join(f.dir, "missing.pem")
			},
			wantOut: []string{"reading certificate", "no such file"}},
		{name: "password null and no certificate", wantExit: 2,
			setup: func(f *fixture) {
				f.writeServicePrincipal(map[string]any{"appId": entratest.DefaultClientID, "displayName": "d", "password": nil, "tenant": entratest.DefaultTenantID})
			},
			wantOut: []string{"AZURE_CLIENT_CERTIFICATE_PATH"}},
		{name: "secret and certificate both", wantExit: 1,
			setup:   func(f *fixture) { f.env["AZURE_CLIENT_CERTIFICATE_PATH"] = f.spFile },
			wantOut: []string{"client secret and AZURE_CLIENT_CERTIFICATE_PATH"}},

		// Entra refuses.
		{name: "certificate not registered on the app", wantExit: 10, wantRequests: 1, setup: cert(pemOptions{unregistered: true}),
			wantOut: []string{"AADSTS700027", "not registered"}},
	})
}

func TestWorkloadIdentity(t *testing.T) {
	t.Parallel()
	wi := func(claims map[string]any) func(*fixture) { return func(f *fixture) { f.useWorkloadIdentity(claims) } }
	runTable(t, []runCase{
		{name: "success", wantRequests: 1, setup: wi(nil),
			wantOut: []string{`credential="workload identity federation"`, "client_id=" + entratest.DefaultClientID},
			check: func(t *testing.T, f *fixture, out string) {
				form := wantAssertionRequest(t, f, entratest.PrometheusResource)
				token, _ := os.ReadFile(f.env["AZURE_FEDERATED_TOKEN_FILE"])
				if form.Get("client_assertion") != string(token) {
					t.Error("the client assertion is not the federated token")
				}
				if strings.Contains(out, "display_name") {
					t.Error("workload identity has no display name, yet one was logged")
				}
			}},
		{name: "token file rotated between attempts", wantRequests: 2,
			setup: func(f *fixture) {
				f.useWorkloadIdentity(nil)
				resp := errorResponse(503, "temporarily_unavailable", 0)
				resp.Then = func() {
					rotated, err := entratest.ServiceAccountToken(map[string]any{"jti": "rotated"})
					if err == nil {
						err = os.WriteFile(f.env["AZURE_FEDERATED_TOKEN_FILE"], []byte(rotated), 0o600)
					}
					if err != nil {
						f.t.Error(err)
					}
				}
				f.srv.Enqueue(resp)
			},
			check: func(t *testing.T, f *fixture, _ string) {
				r := f.srv.Requests()
				token, _ := os.ReadFile(f.env["AZURE_FEDERATED_TOKEN_FILE"])
				if r[0].Form.Get("client_assertion") == r[1].Form.Get("client_assertion") || r[1].Form.Get("client_assertion") != string(token) {
					t.Error("the second attempt did not send the rotated token")
				}
			}},

		// Before any request.
		{name: "only AZURE_FEDERATED_TOKEN_FILE", wantExit: 1,
			setup: func(f *fixture) {
				f.useWorkloadIdentity(nil)
				delete(f.env, "AZURE_CLIENT_ID")
				delete(f.env, "AZURE_TENANT_ID")
			},
			wantOut: []string{"AZURE_CLIENT_ID, AZURE_TENANT_ID not set"}},
		{name: "AZURE_FEDERATED_TOKEN_FILE missing", wantExit: 1,
			setup:   func(f *fixture) { f.useWorkloadIdentity(nil); delete(f.env, "AZURE_FEDERATED_TOKEN_FILE") },
			wantOut: []string{"AZURE_FEDERATED_TOKEN_FILE not set", "azure.workload.identity/use"}},
		{name: "service principal and federated token both", wantExit: 1,
			setup:   func(f *fixture) { f.useWorkloadIdentity(nil); f.env["ENTRA_SERVICE_PRINCIPAL"] = f.spFile },
			wantOut: []string{"both ENTRA_SERVICE_PRINCIPAL and AZURE_FEDERATED_TOKEN_FILE"}},
		{name: "federated token file absent", wantExit: 1,
			setup: func(f *fixture) {
				f.useWorkloadIdentity(nil)
				mustDo(f.t, os.Remove(f.env["AZURE_FEDERATED_TOKEN_FILE"]))
			},
			wantOut: []string{"reading federated token", "no such file"}},
		{name: "federated token file empty", wantExit: 2,
			setup: func(f *fixture) {
				f.useWorkloadIdentity(nil)
				mustDo(f.t, os.WriteFile(f.env["AZURE_FEDERATED_TOKEN_FILE"], nil, 0o600))
			},
			wantOut: []string{"empty"}},
		{name: "federated token expired", wantExit: 2, setup: wi(map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}),
			wantOut: []string{"expired at", `sub \"system:serviceaccount:monitoring:prometheus-reader\"`}},
		{name: "federated token not a JWT", wantExit: 2,
			setup: func(f *fixture) {
				f.useWorkloadIdentity(nil)
				mustDo(f.t, os.WriteFile(f.env["AZURE_FEDERATED_TOKEN_FILE"], []byte("not-a-jwt-at-all"), 0o600))
			},
			wantOut: []string{"not a signed JWT"}},
		{name: "certificate without a service principal file", wantExit: 1,
			setup: func(f *fixture) {
				f.useWorkloadIdentity(nil)
				f.env["AZURE_CLIENT_CERTIFICATE_PATH"] = filepath.Join(f.dir, "cert.pem")
			},
			wantOut: []string{"AZURE_CLIENT_CERTIFICATE_PATH is set but ENTRA_SERVICE_PRINCIPAL is not"}},
		{name: "tenant ID with a slash", wantExit: 1,
			setup:   func(f *fixture) { f.useWorkloadIdentity(nil); f.env["AZURE_TENANT_ID"] = "common/../x" },
			wantOut: []string{"AZURE_TENANT_ID"}},
		// A user coming from azidentity's environment credential (issue 14, item 6).
		{name: "AZURE_CLIENT_SECRET instead of a service principal file", wantExit: 1,
			setup: func(f *fixture) {
				delete(f.env, "ENTRA_SERVICE_PRINCIPAL")
				f.env["AZURE_CLIENT_ID"] = entratest.DefaultClientID
				f.env["AZURE_TENANT_ID"] = entratest.DefaultTenantID
				f.env["AZURE_CLIENT_SECRET"] = f.secret
			},
			wantOut: []string{`AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET set, as for azidentity's environment credential, but this program does not read AZURE_CLIENT_SECRET (ENTRA_SERVICE_PRINCIPAL is not set): put the secret in a service principal file`,
				"set ENTRA_SERVICE_PRINCIPAL to its path"},
			notOut: []string{"workload identity"}},
		{name: "client ID from the example's annotation", wantExit: 1,
			setup: func(f *fixture) {
				f.useWorkloadIdentity(nil)
				f.env["AZURE_CLIENT_ID"] = "00000000-0000-0000-0000-000000000000"
			},
			wantOut: []string{`AZURE_CLIENT_ID \"00000000-0000-0000-0000-000000000000\" looks like a placeholder from an example, not a client ID: annotate the service account with azure.workload.identity/client-id`}},
		{name: "tenant ID placeholder", wantExit: 1,
			setup:   func(f *fixture) { f.useWorkloadIdentity(nil); f.env["AZURE_TENANT_ID"] = "<tenant-id>" },
			wantOut: []string{`AZURE_TENANT_ID \"<tenant-id>\": attribute \"tenant\" looks like a placeholder`}},

		// Entra refuses, and the message shows the token's claims.
		{name: "issuer not federated", wantExit: 10, wantRequests: 1, setup: wi(map[string]any{"iss": "https://kubernetes.default.svc.cluster.local"}),
			wantOut: []string{"AADSTS700211", `iss \"https://kubernetes.default.svc.cluster.local\"`, `sub \"system:serviceaccount:monitoring:prometheus-reader\"`, "exp 20"}},
		{name: "audience not federated", wantExit: 10, wantRequests: 1, setup: wi(map[string]any{"aud": "api://other"}),
			wantOut: []string{"AADSTS700212", `aud [\"api://other\"]`}},
		{name: "subject not federated", wantExit: 10, wantRequests: 1, setup: wi(map[string]any{"sub": "system:serviceaccount:default:default"}),
			wantOut: []string{"AADSTS700213", `sub \"system:serviceaccount:default:default\"`}},
		{name: "signing key not among the issuer's keys", wantExit: 10, wantRequests: 1,
			setup: func(f *fixture) {
				f.useWorkloadIdentity(nil)
				app := f.srv.Apps[entratest.DefaultClientID]
				app.Federated[0].Keys = func() (jose.JSONWebKeySet, error) { return jose.JSONWebKeySet{}, nil }
			},
			wantOut: []string{"AADSTS7000272", "a key its issuer does not publish",
				`iss \"` + entratest.ServiceAccountIssuer + `\"`, `sub \"system:serviceaccount:monitoring:prometheus-reader\"`, `aud [\"api://AzureADTokenExchange\"]`}},
		{name: "Entra finds the federated token out of its time range", wantExit: 10, wantRequests: 1,
			setup: func(f *fixture) {
				f.useWorkloadIdentity(nil)
				f.srv.Enqueue(errorResponse(400, "invalid_client", 700024))
			},
			wantOut: []string{"AADSTS700024", "exp 20"}},
		{name: "subject and audience from two different federated credentials", wantExit: 10, wantRequests: 1,
			setup: func(f *fixture) {
				f.useWorkloadIdentity(map[string]any{"sub": "system:serviceaccount:other:sa"})
				app := f.srv.Apps[entratest.DefaultClientID]
				app.Federated = append(app.Federated, entratest.FederatedCredential{
					Issuer: entratest.ServiceAccountIssuer, Subject: "system:serviceaccount:other:sa", Audience: "api://something-else"})
				f.srv.Apps[entratest.DefaultClientID] = app
			},
			wantOut: []string{"AADSTS70021", `sub \"system:serviceaccount:other:sa\"`}},
		{name: "AADSTS70021", wantExit: 10, wantRequests: 1,
			setup: func(f *fixture) {
				f.useWorkloadIdentity(nil)
				f.srv.Enqueue(errorResponse(400, "invalid_request", 70021))
			},
			wantOut: []string{"AADSTS70021", "federated credential"}},
	})
}

// rsaPSSKeyPEM is a 2048-bit key made with "openssl genpkey -algorithm RSA-PSS": its PKCS#8 algorithm is
// id-RSASSA-PSS, which Go cannot parse and Entra does not take.
const rsaPSSKeyPEM = `-----BEGIN PRIVATE KEY-----
MIIEvAIBADALBgkqhkiG9w0BAQoEggSoMIIEpAIBAAKCAQEAkIgV11rx6Zf9hpSd
WIEn3mExx/N+NsMOEJR7OquYjvA/3ck8gKzYrsCn4Zz40QaR7WKTnecPykjZdO7I
DdmLd1D2s0NPOHWA71AXHci6TvwwgOBPxH+VIxFuYLPiOtr/aGLua3z01mdaMKqb
AGZ62xwdsESINYczGnLdKAPvCqjMAdtVH3pl3Jhmyp1yUWa4ZWzDauBtTtgKhzh3
bXRv3R1dzgN9Ce+f1E96O/ZOeCqI6zHASfzeY+SyKKJLKvS48lE/ru6lYT6P5K0M
kD6coB3j1038VVtSsEL5Cev5G/cVZpQ8Utb2/X5IWlwQzPhjLNxUnqewPiY7Dvdo
jgQ0xQIDAQABAoIBAAOWDNPL4uK9rbN+YEijkDPLIVz3uc9t0KuipUupRFDIhJ0p
K6WylgAA6qJaki0Fje7uROTyqGv5fTWSxPGHeYlpzd4fst67bIogBPEJsPv2SNVd
V+gBsfP0sDYY7r7bU4yUEZxfmQQNw8Xmd5AaM70RKE2ldatLrLbSgpINRgvlSohM
udpOpe4N+gcdl9n8XxJ3NcbHhRll6h7xiMm+AwFPmOks3W1HnshYvUedsHezLUkU
0ffzx0hZMAH90suWnHOPVS+7Ltpok7NJiU87m5wDtrcuHczzlpmHV57Oe7Febu7E
ir6gNYtLqJgyZcNnK9XCdy/ROaHZXeOcxl+O/MUCgYEAw8GhsH2BUJEvV7CFJ8Bi
DLSKfPJyzTRo8tIDJcB9DjifWe9w+sweFUAc2afWSu75RgukrlCA7ow1UCUERwMX
HBgWOGyq3RIXOpOzIgAc45gpDSPHTHbBx7dppxMCxixBJU+gAjvPQP+DIEvnGfCD
zCjMCzfBhrOa5KMnIfllgPcCgYEAvQLJVf/hXHuL5AV2DiTzXJTVkp26R0FVrpn1
AdCPShl9rs4cwrr39k1BFQ50I4DIOOEkymoRyqJG6kk6bltRCcj/6Mb0rXzhfKAb
8ycw3GhSujkWwbfu2oI5pPWnFjy+lYSOW8VvjbKlDyKb+np9xVit2TJbdwU8S8oC
lfpnRSMCgYEAn1SVJC+i906UeA0m9An0RF8WcUhtBHTqDum8wheAMfkISo1HKfrF
aYp7cPTYyLjlj4ueiHrh1keshQT8DEiJoMZCH77i+3jkCzt4i+4HlX+duiIq7yOh
6cpxZhllIqOWiqXamLbRpBfURI9DFKvcumliWqcRD3BUXFAnY9G4OlUCgYEAhXbj
PoPZ2Zkv1cp5a1FyOuypxsbzk38yBoGWPTrNA5Dua7IFIwgtMdGpZDn5jlxQhcGN
XhT6DTD7jFI7HVQD7DnvYqqieaLWAk94jQEegnRz/iVzyUSdN9R+6dnAq3YnSaL5
dxn6RH9iCEbzBzLZfrG4yMbDSU78HbQ+kTLpGysCgYBX8/CPalYvbRwT94uSaorU
5OZOebcn7xZ5l8c+g2I64+hOdvNtppsYw9gQTKGoF6CUz1BWjYM2YWoRW8DpRiTk
hEETbdz0lRsR5kegElHH+/QyQ6CkS3vM/SqYnpNQdPBY8Rc9UbejL/fsAZGXQYZ2
jEuK7OKbOhK5sZVTxQc7lg==
-----END PRIVATE KEY-----
`

// holdLease makes every open(2) of path block, as a hung FUSE or network file system would: it takes a
// write lease on path (fcntl F_SETLEASE), which the kernel breaks for an opener only after
// /proc/sys/fs/lease-break-time (45 s by default) unless the holder lets go, which it does when the test
// ends. It returns a function that waits until an open is blocked on the lease. It skips where leases
// cannot be taken.
func holdLease(t *testing.T, path string) (waitBlocked func()) {
	waitBlocked, _ = holdReleasableLease(t, path)
	return waitBlocked
}

// holdReleasableLease is [holdLease], and also returns a function that lets go of the lease before the
// test ends: the file system answers again.
func holdReleasableLease(t *testing.T, path string) (waitBlocked, release func()) {
	t.Helper()
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	mustDo(t, err)
	var once sync.Once
	release = func() { once.Do(func() { syscall.Close(fd) }) }
	t.Cleanup(release)
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETLEASE, syscall.F_WRLCK); errno != 0 {
		t.Skipf("cannot take a lease on %q: %v", path, errno)
	}
	return func() {
		// While a lease break is pending, F_GETLEASE gives the type the lease is to become.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
			lease, _, _ := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETLEASE, 0)
			if lease != syscall.F_WRLCK {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Errorf("nothing opened %q for 30 s", path)
	}, release
}

// TestBlockedCredential: a credential file, or the CA file checked at start, whose open never returns (a
// hung FUSE or network file; here a file lease, see [holdLease]) does not outlive BEARER_TOKEN_TIMEOUT
// or a signal: the run ends with exit status 1, saying why, sends nothing and leaves nothing behind,
// not even later, when the file answers.
func TestBlockedCredential(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		setup    func(f *fixture) string // returns the file to block
		timeout  string                  // BEARER_TOKEN_TIMEOUT; "" to cancel the context instead
		wantWhy  string
		wantReqs int
	}{
		{"service principal, deadline", func(f *fixture) string { return f.spFile }, "300ms", "BEARER_TOKEN_TIMEOUT (300ms) ran out", 0},
		{"service principal, signal", func(f *fixture) string { return f.spFile }, "", "signal: terminated", 0},
		{"federated token, deadline", func(f *fixture) string {
			f.useWorkloadIdentity(nil)
			return f.env["AZURE_FEDERATED_TOKEN_FILE"]
		}, "300ms", "BEARER_TOKEN_TIMEOUT (300ms) ran out", 0},
		{"SSL_CERT_FILE, deadline", func(f *fixture) string {
			ca := filepath.Join(f.dir, "ca.pem")
			mustDo(f.t, os.WriteFile(ca, must(entratest.CAPEM()), 0o644))
			f.env["SSL_CERT_FILE"] = ca
			return ca
		}, "300ms", "BEARER_TOKEN_TIMEOUT (300ms) ran out", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			waitBlocked := holdLease(t, tc.setup(f))
			ctx, cancel := context.WithCancelCause(t.Context())
			defer cancel(nil)
			if tc.timeout != "" {
				f.env["BEARER_TOKEN_TIMEOUT"] = tc.timeout
			} else {
				go func() {
					waitBlocked()
					cancel(errors.New("signal: terminated"))
				}()
			}
			start := time.Now()
			out, err := f.run(ctx)
			t.Logf("returned after %v; output:\n%s", time.Since(start), out)
			f.checkNoSecrets(out)
			if got := exitStatus(err); got != exitConfig {
				t.Errorf("exit status %d, want %d (%v)", got, exitConfig, err)
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantWhy) || !errors.Is(err, errStuck) {
				t.Errorf("error %v does not say why", err)
			}
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Errorf("run took %v", elapsed)
			}
			if got := len(f.srv.Requests()); got != tc.wantReqs {
				t.Errorf("%d requests, want %d", got, tc.wantReqs)
			}
			if diff := cmp.Diff([]string(nil), f.dirEntries()); diff != "" {
				t.Errorf("token directory (-want +got):\n%s", diff)
			}
		})
	}
}
