package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// clientAssertionType is the client_assertion_type of a JWT client assertion (RFC 7523 section 2.2).
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLifetime is how long a client assertion is valid, from its nbf. Microsoft asks for 5 to 10
// minutes (https://learn.microsoft.com/en-us/entra/identity-platform/certificate-credentials).
const assertionLifetime = 10 * time.Minute

// minRSABits is the smallest RSA key Entra ID accepts for a certificate credential.
const minRSABits = 2048

// clientCertificate is a certificate credential: the application's certificate and RSA private key,
// which signs a client assertion for each request. The key must never be printed.
type clientCertificate struct {
	clientID string
	leaf     *x509.Certificate
	key      *rsa.PrivateKey
}

// loadCertificate reads the PEM file at path (see [readCredentialFile]): one or more certificates (the
// leaf and any chain) and one unencrypted RSA private key in PKCS#1 or PKCS#8 form (EC keys, SEC 1 or
// PKCS#8, are recognised to be refused). It checks, before any request, that the key is an RSA key of
// at least 2048 bits (Entra ID takes PS256 assertions only), that it matches a certificate, and that
// this certificate is valid at now. An unreadable file gives exit status 1, anything else wrong exit
// status 2. Its errors never hold the key.
func loadCertificate(path string, now time.Time) (*clientCertificate, error) {
	data, err := readCredentialFile(path)
	if errors.Is(err, errTooLarge) {
		return nil, withExit(exitCredential, fmt.Errorf("reading certificate %q: %w", path, err))
	} else if err != nil {
		return nil, withExit(exitConfig, fmt.Errorf("reading certificate %q: %w", path, err))
	}
	c, err := parseCertificatePEM(data, now)
	if err != nil {
		return nil, withExit(exitCredential, fmt.Errorf("reading certificate %q: %w", path, err))
	}
	return c, nil
}

// parseCertificatePEM finds the private key and the certificate it belongs to in data; see
// [loadCertificate] for what it accepts.
func parseCertificatePEM(data []byte, now time.Time) (*clientCertificate, error) {
	var certs []*x509.Certificate
	var key crypto.Signer
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("certificate %d is not valid: %w", len(certs)+1, err)
			}
			certs = append(certs, cert)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the private key is encrypted: export it without a password (e.g. openssl pkey -in key.pem -out plain.pem) and keep the file in a Kubernetes Secret")
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
			if key != nil {
				return nil, errors.New("more than one private key")
			}
			if _, ok := block.Headers["DEK-Info"]; ok {
				return nil, errors.New("the private key is encrypted: export it without a password (e.g. openssl pkey -in key.pem -out plain.pem) and keep the file in a Kubernetes Secret")
			}
			k, err := parsePrivateKey(block)
			if err != nil {
				return nil, err
			}
			key = k
		}
	}
	switch {
	case key == nil && len(certs) == 0 && len(data) > 0 && data[0] == 0x30:
		return nil, errors.New("binary DER, such as a PKCS#12 (.pfx) file, not PEM: convert it, e.g. openssl pkcs12 -in cert.pfx -nodes -out cert.pem")
	case key == nil && len(certs) == 0:
		return nil, errors.New("no PEM certificate or private key: want the PEM file \"az ad sp create-for-rbac --create-cert\" writes")
	case key == nil:
		return nil, errors.New("no private key: want the certificate and its unencrypted private key in one PEM file")
	case len(certs) == 0:
		return nil, errors.New("no certificate: want the certificate and its private key in one PEM file")
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the private key is %s: Entra ID takes only RSA keys for certificate credentials (client assertions are signed with PS256)", keyKind(key))
	}
	if bits := rsaKey.N.BitLen(); bits < minRSABits {
		return nil, fmt.Errorf("the private key is a %d-bit RSA key: Entra ID wants at least %d bits", bits, minRSABits)
	}
	var leaf *x509.Certificate
	for _, c := range certs {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok && pub.Equal(rsaKey.Public()) {
			leaf = c
			break
		}
	}
	if leaf == nil {
		return nil, fmt.Errorf("the private key matches none of the %d certificates in the file", len(certs))
	}
	switch {
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("certificate %q is not valid for another %s (from %s, by this machine's clock)",
			leaf.Subject.String(), leaf.NotBefore.Sub(now).Round(time.Second), timestamp(leaf.NotBefore))
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("certificate %q expired %s ago, at %s: add a new one with \"az ad app credential reset --id <appId> --create-cert --append\"",
			leaf.Subject.String(), now.Sub(leaf.NotAfter).Round(time.Second), timestamp(leaf.NotAfter))
	}
	return &clientCertificate{leaf: leaf, key: rsaKey}, nil
}

// oidRSAPSS is the algorithm of an RSA key restricted to PSS (RFC 4055 section 3.1), which Go's x509
// does not parse.
const oidRSAPSS = "1.2.840.113549.1.1.10"

// parsePrivateKey parses a PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY") or SEC 1 ("EC PRIVATE
// KEY") block. Errors say which form failed, never the key's bytes.
func parsePrivateKey(block *pem.Block) (crypto.Signer, error) {
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	}
	if err != nil {
		// x509's errors name formats and algorithm OIDs, never key bytes.
		if strings.Contains(err.Error(), oidRSAPSS) {
			return nil, errors.New("the private key is an RSA-PSS-only key (OID " + oidRSAPSS + "): Entra ID wants a plain RSA key (rsaEncryption); make the certificate with one")
		}
		return nil, fmt.Errorf("the %s block is not a private key this program can use: %w", block.Type, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("the %s block holds an unsupported kind of key", block.Type)
	}
	return signer, nil
}

// keyKind names the kind of key for messages.
func keyKind(key crypto.Signer) string {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return "an ECDSA " + k.Curve.Params().Name + " key"
	case ed25519.PrivateKey:
		return "an Ed25519 key"
	}
	return fmt.Sprintf("a %T", key)
}

// thumbprint returns the base64url SHA-256 of the leaf certificate's DER, the x5t#S256 header
// Entra ID uses to find the certificate registered on the application.
func (c *clientCertificate) thumbprint() string {
	sum := sha256.Sum256(c.leaf.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// clientForm returns client_id, client_assertion_type and a new client assertion for endpoint: a JWT
// signed with PS256 whose header has typ JWT and x5t#S256, and whose claims are aud (the token
// endpoint), iss and sub (the client ID), a random jti, and nbf, iat and exp (now to now+10 minutes),
// as https://learn.microsoft.com/en-us/entra/identity-platform/certificate-credentials describes.
func (c *clientCertificate) clientForm(endpoint string, now time.Time) (url.Values, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.PS256, Key: c.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("x5t#S256", c.thumbprint()))
	if err != nil {
		return nil, fmt.Errorf("signing client assertion: %w", err)
	}
	var jti [16]byte // a random (version 4) UUID, the form Microsoft's example uses
	if _, err := rand.Read(jti[:]); err != nil {
		return nil, fmt.Errorf("signing client assertion: %w", err)
	}
	jti[6], jti[8] = jti[6]&0x0f|0x40, jti[8]&0x3f|0x80
	assertion, err := jwt.Signed(signer).Claims(jwt.Claims{
		Audience:  jwt.Audience{endpoint},
		Issuer:    c.clientID,
		Subject:   c.clientID,
		ID:        fmt.Sprintf("%x-%x-%x-%x-%x", jti[0:4], jti[4:6], jti[6:8], jti[8:10], jti[10:]),
		NotBefore: jwt.NewNumericDate(now),
		IssuedAt:  jwt.NewNumericDate(now),
		Expiry:    jwt.NewNumericDate(now.Add(assertionLifetime)),
	}).Serialize()
	if err != nil {
		return nil, fmt.Errorf("signing client assertion: %w", err)
	}
	return url.Values{
		"client_id":             {c.clientID},
		"client_assertion_type": {clientAssertionType},
		"client_assertion":      {assertion},
	}, nil
}

func (c *clientCertificate) v2() bool { return true }

func (c *clientCertificate) logAttrs() []any {
	return []any{"credential", "certificate", "certificate_subject", c.leaf.Subject.String(),
		"certificate_x5t_s256", c.thumbprint(), "certificate_expires", timestamp(c.leaf.NotAfter)}
}
