package main

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// federatedToken is workload identity federation: the Kubernetes service account token that the
// kubelet projects into the pod, sent as the client assertion
// (https://learn.microsoft.com/en-us/entra/workload-id/workload-identity-federation,
// https://azure.github.io/azure-workload-identity/docs/). The token must never be printed.
type federatedToken struct {
	clientID string
	path     string // AZURE_FEDERATED_TOKEN_FILE
}

// loadWorkloadIdentity reads the variables the Azure Workload Identity webhook sets: AZURE_CLIENT_ID,
// AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE, naming every missing one, and checks that the
// federated token file can be read now. Errors carry exit status 1.
func loadWorkloadIdentity(getenv func(string) string) (identity, credential, error) {
	id := identity{clientID: getenv("AZURE_CLIENT_ID"), tenant: getenv("AZURE_TENANT_ID")}
	path := getenv("AZURE_FEDERATED_TOKEN_FILE") // all three set: see checkCredentialVariables
	if err := checkTenant(id.tenant); err != nil {
		return identity{}, nil, withExit(exitConfig, fmt.Errorf("AZURE_TENANT_ID %q: %w", id.tenant, err))
	}
	if err := checkPrintable(id.clientID); err != nil {
		return identity{}, nil, withExit(exitConfig, fmt.Errorf("AZURE_CLIENT_ID %q: %w", id.clientID, err))
	}
	c := &federatedToken{clientID: id.clientID, path: path}
	if _, err := c.read(); err != nil {
		return identity{}, nil, withExit(exitConfig, err)
	}
	return id, c, nil
}

// read returns the federated token from its file (see [readCredentialFile]). The kubelet writes it
// without white space around it; any is trimmed, and white space inside is an error.
func (c *federatedToken) read() (string, error) {
	data, err := readCredentialFile(c.path)
	if err != nil {
		return "", fmt.Errorf("reading federated token %q: %w", c.path, err)
	}
	token := strings.TrimSpace(string(data))
	switch {
	case token == "":
		return "", fmt.Errorf("reading federated token %q: the file is empty", c.path)
	case checkPrintable(token) != nil:
		return "", fmt.Errorf("reading federated token %q: it holds white space or control characters", c.path)
	}
	claims, err := federatedClaims(token)
	if err != nil {
		return "", fmt.Errorf("reading federated token %q: %w", c.path, err)
	}
	if claims.Expiry != nil && !claims.Expiry.Time().After(time.Now()) {
		return "", fmt.Errorf("reading federated token %q: it expired at %s (iss %q, sub %q): the kubelet has stopped refreshing it, or the node's clock is wrong",
			c.path, timestamp(claims.Expiry.Time()), claims.Issuer, claims.Subject)
	}
	return token, nil
}

// federatedClaims decodes the federated token's claims without verifying it: Entra verifies it against
// the cluster's OIDC issuer; this program only reads the claims to explain a refusal, and to refuse
// a token that cannot work before sending it.
func federatedClaims(token string) (jwt.Claims, error) {
	var claims jwt.Claims
	parsed, err := jwt.ParseSigned(token, tokenAlgorithms)
	if err != nil || parsed.UnsafeClaimsWithoutVerification(&claims) != nil {
		return jwt.Claims{}, errors.New("not a signed JWT, as a Kubernetes service account token is")
	}
	return claims, nil
}

// clientForm returns client_id, client_assertion_type and the federated token as it is in the file
// now, since the kubelet rotates it.
func (c *federatedToken) clientForm(string, time.Time) (url.Values, error) {
	token, err := c.read()
	if err != nil {
		return nil, withExit(exitConfig, err)
	}
	return url.Values{
		"client_id":             {c.clientID},
		"client_assertion_type": {clientAssertionType},
		"client_assertion":      {token},
	}, nil
}

func (c *federatedToken) v2() bool { return true }

func (c *federatedToken) logAttrs() []any {
	return []any{"credential", "workload identity federation", "federated_token_file", c.path}
}

// federationCodes are the AADSTS codes of an assertion that matches no federated credential of the
// app, is signed by a key its issuer does not publish, or has expired
// (https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes).
var federationCodes = []int{70021, 700211, 700212, 700213, 7000272, 700024}

// explainRefusal adds to err, when Entra refused the federated token with one of federationCodes, the
// token's iss, sub, aud and exp (not the token): they must match the app's federated credential.
func (c *federatedToken) explainRefusal(err error) error {
	e, ok := errors.AsType[*entraError](err)
	if !ok || !slices.ContainsFunc(e.aadsts(), func(code int) bool { return slices.Contains(federationCodes, code) }) {
		return err
	}
	token, readErr := c.read()
	if readErr != nil {
		return fmt.Errorf("%w; %w", err, readErr)
	}
	claims, _ := federatedClaims(token) // read has parsed it
	exp := "none"
	if claims.Expiry != nil {
		exp = timestamp(claims.Expiry.Time())
	}
	return fmt.Errorf("%w; the federated token has iss %q, sub %q, aud %q, exp %s: the app's federated credential must have the same issuer, subject and audience (api://AzureADTokenExchange)",
		err, claims.Issuer, claims.Subject, []string(claims.Audience), exp)
}
