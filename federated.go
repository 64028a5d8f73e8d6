package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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

// workloadIdentitySource is workload identity federation, as the Azure Workload Identity webhook
// configures it: AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE.
type workloadIdentitySource struct {
	app      entraApp
	clientID string
	tenant   string
	path     string // AZURE_FEDERATED_TOKEN_FILE
}

// load checks the client ID and tenant and returns the credential, without reading the token file.
// Errors carry exit status 1.
func (s *workloadIdentitySource) load() (identity, *federatedToken, error) {
	id := identity{clientID: s.clientID, tenant: s.tenant}
	if err := checkTenant(id.tenant); err != nil {
		return identity{}, nil, withExit(exitConfig, fmt.Errorf("AZURE_TENANT_ID %q: %w", id.tenant, err))
	}
	if err := checkClientID(id.clientID); err != nil {
		return identity{}, nil, withExit(exitConfig, fmt.Errorf("AZURE_CLIENT_ID %q %w: annotate the service account with azure.workload.identity/client-id: the app's appId", id.clientID, err))
	}
	return id, &federatedToken{clientID: id.clientID, path: s.path}, nil
}

// check checks the variables and that the federated token file can be read now. Errors carry exit
// status 1.
func (s *workloadIdentitySource) check(time.Time) (sourceInfo, error) {
	id, c, err := s.load()
	if err != nil {
		return sourceInfo{}, err
	}
	if _, err := c.read(); err != nil {
		return sourceInfo{}, withExit(exitConfig, err)
	}
	return s.app.info(id, c), nil
}

// token sends the federated token as the file holds it now ([federatedToken.clientForm]).
func (s *workloadIdentitySource) token(ctx context.Context, client *http.Client, now time.Time) (*tokenResponse, error) {
	id, c, err := s.load()
	if err != nil {
		return nil, err
	}
	return s.app.request(ctx, client, id, c, now)
}

// read returns the federated token from its file (see [readCredentialFile]). The kubelet writes it
// without white space around it; any is trimmed, and white space inside is an error. A file that
// cannot be read gives an error without exit status (1, configuration, as for the other credential
// files); one that is read but is not a valid token (too large, empty, not a JWT, expired) exit status
// 2, as an invalid service principal file or certificate does.
func (c *federatedToken) read() (string, error) {
	data, err := readCredentialFile(c.path)
	if errors.Is(err, errTooLarge) {
		return "", withExit(exitCredential, fmt.Errorf("reading federated token %q: %w", c.path, err))
	} else if err != nil {
		return "", fmt.Errorf("reading federated token %q: %w", c.path, err)
	}
	token := strings.TrimSpace(string(data))
	switch {
	case token == "":
		return "", withExit(exitCredential, fmt.Errorf("reading federated token %q: the file is empty", c.path))
	case checkPrintable(token) != nil:
		return "", withExit(exitCredential, fmt.Errorf("reading federated token %q: it holds white space or control characters", c.path))
	}
	claims, err := federatedClaims(token)
	if err != nil {
		return "", withExit(exitCredential, fmt.Errorf("reading federated token %q: %w", c.path, err))
	}
	if claims.Expiry != nil && !claims.Expiry.Time().After(time.Now()) {
		return "", withExit(exitCredential, fmt.Errorf("reading federated token %q: it expired at %s (iss %q, sub %q): the kubelet has stopped refreshing it, or the node's clock is wrong",
			c.path, timestamp(claims.Expiry.Time()), claims.Issuer, claims.Subject))
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
