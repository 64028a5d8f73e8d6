package entratest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"sync"
	"time"
)

// The test CA is made once per process, so that one SSL_CERT_FILE trusts every stand-in the process
// starts: the program under test keeps its production TLS settings and trusts the stand-in the way a
// user trusts a private CA.
var (
	caOnce sync.Once
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  []byte
	caErr  error
)

// CAPEM returns the PEM certificate of the CA that signs every stand-in's server certificate, to be
// written to a file named by SSL_CERT_FILE.
func CAPEM() ([]byte, error) {
	caOnce.Do(makeCA)
	return caPEM, caErr
}

func makeCA() {
	caKey, caErr = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if caErr != nil {
		return
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "entratest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		caErr = err
		return
	}
	caCert, caErr = x509.ParseCertificate(der)
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ProxiedHost is a name in the stand-in's certificate that resolves nowhere: a test reaches the stand-in
// under it only through a proxy that connects it to the stand-in's address, since Go never sends
// requests for a loopback address or localhost through a proxy.
const ProxiedHost = "login.entratest.invalid"

// serverCertificate returns a new certificate for 127.0.0.1, ::1, localhost, [ProxiedHost] and the
// addresses in extra, signed by the test CA.
func serverCertificate(extra ...net.IP) (tls.Certificate, error) {
	if _, err := CAPEM(); err != nil {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "entratest"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  append([]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, extra...),
		DNSNames:     []string{"localhost", ProxiedHost},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// newServerTLSConfig serves leaf over TLS 1.2 or later, as Entra does.
func newServerTLSConfig(leaf tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{leaf}, MinVersion: tls.VersionTLS12}
}
