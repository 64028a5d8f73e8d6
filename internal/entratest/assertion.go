package entratest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Workload identity federation, as AKS sets it up.
const (
	// ServiceAccountIssuer is the stand-in cluster's OIDC issuer URL.
	ServiceAccountIssuer = "https://oidc.prod-aks.azure.com/00000000-1111-4222-8333-aksissuer000/"
	// ServiceAccountSubject is the service account the federated credential trusts.
	ServiceAccountSubject = "system:serviceaccount:monitoring:prometheus-reader"
	// TokenExchangeAudience is the audience Entra requires of federated tokens.
	TokenExchangeAudience = "api://AzureADTokenExchange"
	// JWTBearer is the client_assertion_type of a JWT client assertion (RFC 7523).
	JWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

var (
	clusterKeyOnce sync.Once
	clusterKey     *ecdsa.PrivateKey
)

// ServiceAccountToken returns a Kubernetes service account token as the kubelet projects it for
// workload identity: an ES256 JWT from [ServiceAccountIssuer], signed by the stand-in cluster's key,
// with claims over these defaults: iss, sub [ServiceAccountSubject], aud [TokenExchangeAudience],
// iat, nbf and exp (an hour). A nil claim value removes that claim.
func ServiceAccountToken(claims map[string]any) (string, error) {
	clusterKeyOnce.Do(func() { clusterKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
	now := time.Now()
	all := map[string]any{
		"iss": ServiceAccountIssuer, "sub": ServiceAccountSubject, "aud": []string{TokenExchangeAudience},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"kubernetes.io": map[string]any{"namespace": "monitoring", "serviceaccount": map[string]string{"name": "prometheus-reader"}},
	}
	for k, v := range claims {
		if v == nil {
			delete(all, k)
		} else {
			all[k] = v
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: clusterKey},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "cluster"))
	if err != nil {
		return "", err
	}
	return jwt.Signed(signer).Claims(all).Serialize()
}

// assertionClaims are the claims Entra reads from a client assertion.
type assertionClaims struct {
	jwt.Claims
}

// checkAssertion checks a client assertion as Entra does: a certificate-signed assertion (its header
// has x5t#S256) against app's certificates, with aud the token endpoint and iss and sub the client ID;
// anything else as a federated token against app's federated credentials.
func (s *Server) checkAssertion(app App, form url.Values, endpoint string, now time.Time) *refusal {
	if form.Get("client_assertion_type") != JWTBearer {
		return refuse(400, "invalid_request", 50027, "The client_assertion_type must be %s.", JWTBearer)
	}
	parsed, err := jwt.ParseSigned(form.Get("client_assertion"),
		[]jose.SignatureAlgorithm{jose.PS256, jose.RS256, jose.ES256})
	if err != nil {
		return refuse(400, "invalid_request", 50027, "JWT token is invalid or malformed.")
	}
	if _, ok := parsed.Headers[0].ExtraHeaders["x5t#S256"]; ok {
		return s.checkCertificateAssertion(app, parsed, endpoint, now)
	}
	return checkFederatedToken(app, parsed, now)
}

func (s *Server) checkCertificateAssertion(app App, parsed *jwt.JSONWebToken, endpoint string, now time.Time) *refusal {
	h := parsed.Headers[0]
	x5t, _ := h.ExtraHeaders["x5t#S256"].(string)
	i := slices.IndexFunc(app.Certificates, func(c *x509.Certificate) bool { return Thumbprint(c) == x5t })
	if i < 0 {
		return refuse(401, "invalid_client", 700027, "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s']", x5t)
	}
	if h.Algorithm != string(jose.PS256) || h.ExtraHeaders[jose.HeaderType] != "JWT" {
		return refuse(401, "invalid_client", 700027, "Client assertion failed signature validation: alg %s, typ %v.", h.Algorithm, h.ExtraHeaders[jose.HeaderType])
	}
	var c assertionClaims
	if err := parsed.Claims(app.Certificates[i].PublicKey, &c); err != nil {
		return refuse(401, "invalid_client", 700027, "Client assertion failed signature validation.")
	}
	switch {
	case !slices.Equal([]string(c.Audience), []string{endpoint}):
		return refuse(401, "invalid_client", 50012, "Client assertion audience claim does not match Realm issuer.")
	case c.Issuer != app.ClientID || c.Subject != app.ClientID:
		return refuse(401, "invalid_client", 50012, "Client assertion contains an invalid issuer or subject.")
	case c.ID == "" || !s.firstUse(c.ID):
		return refuse(401, "invalid_client", 0, "The client assertion's jti is missing or was used before.")
	case c.Expiry == nil || c.NotBefore == nil || !now.Before(c.Expiry.Time()) || now.Add(time.Minute).Before(c.NotBefore.Time()) ||
		c.Expiry.Time().Sub(c.NotBefore.Time()) > 10*time.Minute:
		return refuse(401, "invalid_client", 700024, "Client assertion is not within its valid time range.")
	}
	return nil
}

func checkFederatedToken(app App, parsed *jwt.JSONWebToken, now time.Time) *refusal {
	var unverified assertionClaims
	if err := parsed.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return refuse(400, "invalid_request", 50027, "JWT token is invalid or malformed.")
	}
	var issuerMatch []FederatedCredential
	for _, f := range app.Federated {
		if f.Issuer == unverified.Issuer {
			issuerMatch = append(issuerMatch, f)
		}
	}
	if len(issuerMatch) == 0 {
		return refuse(400, "invalid_client", 700211, "No matching federated identity record found for presented assertion issuer '%s'.", unverified.Issuer)
	}
	var key any
	if keys := issuerMatch[0].Keys; keys == nil {
		if clusterKey == nil {
			return refuse(400, "invalid_client", 700027, "Client assertion failed signature validation.")
		}
		key = clusterKey.Public()
	} else {
		set, err := keys()
		if err != nil {
			return refuse(400, "invalid_client", 700211, "The issuer '%s' of the presented assertion could not be reached for its signing keys.", unverified.Issuer)
		}
		kid := parsed.Headers[0].KeyID
		found := set.Key(kid)
		if len(found) == 0 {
			return refuse(400, "invalid_client", 7000272, "The key '%s' used to sign the presented assertion was not found in the keys of the issuer '%s'.", kid, unverified.Issuer)
		}
		key = found[0].Public().Key
	}
	var c assertionClaims
	if err := parsed.Claims(key, &c); err != nil {
		return refuse(400, "invalid_client", 700027, "Client assertion failed signature validation.")
	}
	// One record must match issuer, subject and audience together; the others only say which claim
	// is wrong.
	audOK := slices.ContainsFunc(issuerMatch, func(f FederatedCredential) bool { return c.Audience.Contains(f.Audience) })
	subOK := slices.ContainsFunc(issuerMatch, func(f FederatedCredential) bool { return f.Subject == c.Subject })
	allOK := slices.ContainsFunc(issuerMatch, func(f FederatedCredential) bool { return f.Subject == c.Subject && c.Audience.Contains(f.Audience) })
	switch {
	case !audOK:
		return refuse(400, "invalid_client", 700212, "No matching federated identity record found for presented assertion audience '%s'.", []string(c.Audience))
	case !subOK:
		return refuse(400, "invalid_client", 700213, "No matching federated identity record found for presented assertion subject '%s'.", c.Subject)
	case !allOK:
		return refuse(400, "invalid_client", 70021, "No matching federated identity record found for presented assertion. Assertion Issuer: '%s'. Assertion Subject: '%s'. Assertion Audience: '%s'.", c.Issuer, c.Subject, []string(c.Audience))
	case c.Expiry == nil || !now.Before(c.Expiry.Time()):
		return refuse(400, "invalid_client", 700024, "Client assertion is not within its valid time range.")
	}
	return nil
}

// firstUse records jti and reports whether it is new: an assertion must not be replayed.
func (s *Server) firstUse(jti string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seenJTI == nil {
		s.seenJTI = map[string]bool{}
	}
	if s.seenJTI[jti] {
		return false
	}
	s.seenJTI[jti] = true
	return true
}

// Thumbprint returns the x5t#S256 of cert: the base64url SHA-256 of its DER.
func Thumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// NewCertificate returns a self-signed certificate for key, valid from notBefore to notAfter, as
// "az ad sp create-for-rbac --create-cert" makes one.
func NewCertificate(key crypto.Signer, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "azure-rest-api-token-test"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

var (
	rsaKeysMu sync.Mutex
	rsaKeys   = map[int]*rsa.PrivateKey{}
)

// RSAKey returns an RSA key of bits bits, the same one each time for a size: generating keys is slow.
func RSAKey(bits int) (*rsa.PrivateKey, error) {
	rsaKeysMu.Lock()
	defer rsaKeysMu.Unlock()
	if k, ok := rsaKeys[bits]; ok {
		return k, nil
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, err
	}
	rsaKeys[bits] = k
	return k, nil
}
