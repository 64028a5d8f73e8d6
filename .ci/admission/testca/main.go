// Command testca stands in for Fulcio in .ci/admission-check: a root and an
// intermediate CA, and short-lived code-signing leaves for a cosign public
// key carrying a GitHub Actions identity, as Fulcio issues them. Standard
// library only; nothing it writes is trusted outside the check.
//
//	testca ca -dir DIR -name NAME
//	    writes DIR/NAME-root.pem, NAME-intermediate.pem, NAME-chain.pem
//	    (intermediate then root, for cosign --certificate-chain) and
//	    NAME-intermediate.key (PKCS #8), unless they exist.
//	testca leaf -dir DIR -ca NAME -pub KEY.pub -san URI -issuer URL [-expired] -out LEAF.pem
//	    issues a leaf for the public key in KEY.pub (PEM, as cosign
//	    generate-key-pair writes it), signed by NAME's intermediate: SAN URI,
//	    code signing, the Fulcio issuer extensions and GitHub workflow
//	    extensions derived from the SAN. Valid from 5 minutes ago for 2 hours
//	    (the check verifies without a transparency log, so at the current
//	    time), or, with -expired, from 3 hours ago until 1 hour ago.
//	testca show < CERT.pem
//	    prints the certificate's SAN URIs and its issuer extension
//	    (1.3.6.1.4.1.57264.1.8), space-separated: what a policy compares.
//
// Extensions (OIDs under 1.3.6.1.4.1.57264.1, from Fulcio's
// docs/oid-info.md): .1 issuer (raw string, deprecated), .8 issuer
// (DER UTF8String); GitHub: .2 trigger, .3 SHA, .4 workflow name, .5
// repository, .6 ref (raw strings, deprecated), .9 build signer URI, .12
// source repository URI, .14 source repository ref, .18 build config URI,
// .20 build trigger (DER UTF8String).
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "testca:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: testca ca|leaf [flags]")
	}
	fs := flag.NewFlagSet("testca "+args[0], flag.ContinueOnError)
	dir := fs.String("dir", ".", "directory for the CA files")
	switch args[0] {
	case "ca":
		name := fs.String("name", "fulcio", "CA name (file prefix)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return makeCA(*dir, *name)
	case "show":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return show(os.Stdin, os.Stdout)
	case "leaf":
		ca := fs.String("ca", "fulcio", "CA name (file prefix)")
		pub := fs.String("pub", "", "PEM public key to certify")
		san := fs.String("san", "", "SAN URI (the workflow identity)")
		issuer := fs.String("issuer", "", "OIDC issuer URL")
		expired := fs.Bool("expired", false, "issue a certificate that expired an hour ago")
		out := fs.String("out", "", "leaf certificate file (PEM)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *pub == "" || *san == "" || *issuer == "" || *out == "" {
			return errors.New("leaf: -pub, -san, -issuer and -out are required")
		}
		return makeLeaf(*dir, *ca, *pub, *san, *issuer, *expired, *out)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// makeCA writes a self-signed root and an intermediate under it (P-256,
// valid 10 years from a day ago, before any leaf's start: cosign checks the
// chain at the leaf's NotBefore), as Fulcio's chain is shaped: the
// intermediate carries the code-signing EKU, which Go's verifier requires
// of every certificate in a code-signing chain.
func makeCA(dir, name string) error {
	chain := filepath.Join(dir, name+"-chain.pem")
	if _, err := os.Stat(chain); err == nil {
		return nil
	}
	notBefore := time.Now().Add(-24 * time.Hour)
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	root := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"azure-rest-api-token test"}, CommonName: name + " root"},
		NotBefore:             notBefore,
		NotAfter:              notBefore.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, rootKey.Public(), rootKey)
	if err != nil {
		return err
	}
	root, err = x509.ParseCertificate(rootDER)
	if err != nil {
		return err
	}
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	inter := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"azure-rest-api-token test"}, CommonName: name + " intermediate"},
		NotBefore:             notBefore,
		NotAfter:              notBefore.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, inter, root, interKey.Public(), rootKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(interKey)
	if err != nil {
		return err
	}
	rootPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})
	interPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: interDER})
	for f, b := range map[string][]byte{
		name + "-root.pem":         rootPEM,
		name + "-intermediate.pem": interPEM,
		name + "-intermediate.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		name + "-chain.pem":        append(interPEM, rootPEM...),
	} {
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

var (
	oidIssuerV1          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}
	oidTriggerV1         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 2}
	oidSHAV1             = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 3}
	oidWorkflowNameV1    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 4}
	oidRepositoryV1      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 5}
	oidRefV1             = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 6}
	oidIssuer            = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}
	oidBuildSignerURI    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 9}
	oidSourceRepoURI     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 12}
	oidSourceRepoRef     = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 14}
	oidBuildConfigURI    = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 18}
	oidBuildTrigger      = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 20}
	fixedSHA             = strings.Repeat("0", 40)
	errNotGitHubWorkflow = errors.New("SAN is not https://github.com/OWNER/REPO/PATH@REF")
)

// makeLeaf issues the leaf; see the command's doc comment.
func makeLeaf(dir, ca, pubFile, san, issuer string, expired bool, out string) error {
	interPEM, err := os.ReadFile(filepath.Join(dir, ca+"-intermediate.pem"))
	if err != nil {
		return err
	}
	inter, err := parseCert(interPEM)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, ca+"-intermediate.key"))
	if err != nil {
		return err
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return errors.New("intermediate key: no PEM block")
	}
	interKey, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return err
	}
	pubPEM, err := os.ReadFile(pubFile)
	if err != nil {
		return err
	}
	b, _ = pem.Decode(pubPEM)
	if b == nil {
		return fmt.Errorf("%q: no PEM block", pubFile)
	}
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return err
	}

	u, err := url.Parse(san)
	if err != nil {
		return err
	}
	// https://github.com/OWNER/REPO/.github/workflows/FILE@REF
	parts := strings.SplitN(strings.TrimPrefix(u.Path, "/"), "/", 3)
	at := strings.LastIndex(u.Path, "@")
	if u.Host != "github.com" || len(parts) < 3 || at < 0 {
		return errNotGitHubWorkflow
	}
	repo := parts[0] + "/" + parts[1]
	ref := u.Path[at+1:]
	workflowFile := parts[2][:strings.LastIndex(parts[2], "@")]
	raw := func(oid asn1.ObjectIdentifier, s string) pkix.Extension {
		return pkix.Extension{Id: oid, Value: []byte(s)}
	}
	utf8 := func(oid asn1.ObjectIdentifier, s string) (pkix.Extension, error) {
		v, err := asn1.MarshalWithParams(s, "utf8")
		return pkix.Extension{Id: oid, Value: v}, err
	}
	exts := []pkix.Extension{
		raw(oidIssuerV1, issuer),
		raw(oidTriggerV1, "push"),
		raw(oidSHAV1, fixedSHA),
		raw(oidWorkflowNameV1, "release"),
		raw(oidRepositoryV1, repo),
		raw(oidRefV1, ref),
	}
	for _, e := range []struct {
		oid asn1.ObjectIdentifier
		v   string
	}{
		{oidIssuer, issuer},
		{oidBuildSignerURI, san},
		{oidSourceRepoURI, "https://github.com/" + repo},
		{oidSourceRepoRef, ref},
		{oidBuildConfigURI, "https://github.com/" + repo + "/" + workflowFile + "@" + ref},
		{oidBuildTrigger, "push"},
	} {
		x, err := utf8(e.oid, e.v)
		if err != nil {
			return err
		}
		exts = append(exts, x)
	}

	notBefore := time.Now().Add(-5 * time.Minute)
	notAfter := notBefore.Add(2 * time.Hour)
	if expired {
		notBefore = time.Now().Add(-3 * time.Hour)
		notAfter = time.Now().Add(-time.Hour)
	}
	leaf := &x509.Certificate{
		SerialNumber:    serial(),
		NotBefore:       notBefore,
		NotAfter:        notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		URIs:            []*url.URL{u},
		ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, inter, pub, interKey.(crypto.Signer))
	if err != nil {
		return err
	}
	return os.WriteFile(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// show reads one PEM certificate (at most 64 KiB) from r and writes its SAN
// URIs and Fulcio issuer to w.
func show(r io.Reader, w io.Writer) error {
	p, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return err
	}
	c, err := parseCert(p)
	if err != nil {
		return err
	}
	var fields []string
	for _, u := range c.URIs {
		fields = append(fields, u.String())
	}
	for _, e := range c.Extensions {
		if e.Id.Equal(oidIssuer) {
			var s string
			if _, err := asn1.UnmarshalWithParams(e.Value, &s, "utf8"); err != nil {
				return fmt.Errorf("issuer extension: %w", err)
			}
			fields = append(fields, s)
		}
	}
	_, err = fmt.Fprintln(w, strings.Join(fields, " "))
	return err
}

func parseCert(p []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	return x509.ParseCertificate(b.Bytes)
}

// serial is a random 128-bit certificate serial number; the crypto/rand
// reader does not fail on supported platforms (Go 1.24 and later).
func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	return n
}
