package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// identity is a client or server certificate the cluster's components present.
type identity struct {
	name string   // file name: pki/NAME.crt, pki/NAME.key, NAME.kubeconfig
	cn   string   // the user name (CN)
	orgs []string // the groups (O)
	dns  []string // server names; none: a client certificate
	ips  []net.IP
}

// writePKI writes into dir/pki a CA, the certificates of ids signed by it, and the service account
// key pair, and a kubeconfig for each client identity that talks to the API server at server. ECDSA
// P-256 throughout: quick to make, and every component accepts it.
func writePKI(dir, server string, ids []identity) error {
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "k8s-check CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	if err := writeCert(pki, "ca", caDER, caKey); err != nil {
		return err
	}
	for i, id := range ids {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)),
			Subject:      pkix.Name{CommonName: id.cn, Organization: id.orgs},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(48 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			DNSNames:     id.dns,
			IPAddresses:  id.ips,
		}
		if len(id.dns)+len(id.ips) > 0 {
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		if err != nil {
			return err
		}
		if err := writeCert(pki, id.name, der, key); err != nil {
			return err
		}
		if len(id.dns)+len(id.ips) == 0 {
			if err := writeKubeconfig(dir, id.name, server); err != nil {
				return err
			}
		}
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(pki, "sa.key"), saKey); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(pki, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

func writeCert(pki, name string, der []byte, key *ecdsa.PrivateKey) error {
	if err := os.WriteFile(filepath.Join(pki, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return writeKey(filepath.Join(pki, name+".key"), key)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func writeKubeconfig(dir, name, server string) error {
	pki := filepath.Join(dir, "pki")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: k8s-check
  cluster: {certificate-authority: %q, server: %q}
users:
- name: %s
  user: {client-certificate: %q, client-key: %q}
contexts:
- name: k8s-check
  context: {cluster: k8s-check, user: %s}
current-context: k8s-check
`, filepath.Join(pki, "ca.crt"), server, name, filepath.Join(pki, name+".crt"), filepath.Join(pki, name+".key"), name)
	return os.WriteFile(filepath.Join(dir, name+".kubeconfig"), []byte(kc), 0o600)
}
