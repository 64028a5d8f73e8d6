package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// entraError is Entra's error response
// (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow#error-response,
// the same shape on the v1 endpoint). Its text is one line: the HTTP status, the OAuth error, the distinct
// AADSTS codes (a few at most) with a hint for the well-known ones, the first line of the description, the
// trace and correlation IDs Microsoft support asks for, and the authority, each bounded in length (see
// maxField), so that a hostile error response cannot flood the log. Error responses hold no token or secret.
type entraError struct {
	Code          string          // error
	Description   string          // error_description
	ErrorCodes    json.RawMessage // error_codes: numbers, decoded leniently by aadsts
	Timestamp     string          // timestamp
	TraceID       string          // trace_id
	CorrelationID string          // correlation_id

	status    string         // "401 Unauthorized"
	authority string         // scheme://host/ the request went to
	hints     map[int]string // replacing aadstsHints' for this refusal, from what only the credential knows
	// For managed identity, whose endpoints answer with the same OAuth error shape: who refused
	// ("" means Entra ID), and the fix, which ends the message.
	refuser string
	hint    string
}

// aadstsHints explains the AADSTS codes whose cause is well known
// (https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes).
var aadstsHints = map[int]string{
	7000215: "wrong client secret: the service principal file's password must be the secret's Value, not its Secret ID",
	7000222: "the client secret has expired: create a new one with \"az ad app credential reset --id <appId> --append\"",
	700016:  "no application with this appId in the tenant: check appId and tenant",
	90002:   "tenant not found: check tenant, or the tenant is in another cloud: set AZURE_AUTHORITY_HOST (e.g. https://login.microsoftonline.us/)",
	500011:  "resource not found in the tenant: check AZURE_RESOURCE, exactly, trailing slash included",
	700027:  "the certificate is not registered on the app, or the assertion's signature does not verify: upload it with \"az ad app credential reset --id <appId> --cert @cert.pem --append\"",
	700024:  "the client assertion is outside its validity: check the node's clock, and that the kubelet refreshes the federated token",
	70021:   "the federated token matches no federated credential of the app",
	700211:  "the federated token's issuer matches no federated credential of the app",
	700212:  "the federated token's audience matches no federated credential of the app (want api://AzureADTokenExchange)",
	700213:  "the federated token's subject matches no federated credential of the app",
	7000272: "the federated token is signed by a key its issuer does not publish (jwks_uri): the cluster's service account signing key changed, or the issuer URL names another cluster",
}

// Bounds on what the message quotes from an error response, whatever its size (up to maxResponseSize):
// the description's first line, in bytes; each other field, in bytes (Entra's are GUIDs, a timestamp
// and a short OAuth code); and distinct AADSTS codes (Entra sends one, two at most), in number.
const (
	maxDescription = 300
	maxField       = 64
	maxCodes       = 4
)

func (e *entraError) Error() string {
	var b strings.Builder
	refuser := e.refuser
	if refuser == "" {
		refuser = "Entra ID"
	}
	fmt.Fprintf(&b, "token request refused by %s: %s", refuser, e.status)
	if e.Code != "" {
		fmt.Fprintf(&b, ", error %q", truncate(e.Code, maxField))
	}
	codes := e.aadsts()
	for i, code := range codes {
		if i == maxCodes {
			b.WriteString(", more AADSTS codes")
			break
		}
		fmt.Fprintf(&b, ", AADSTS%d", code)
		hint, ok := e.hints[code]
		if !ok {
			hint = aadstsHints[code]
		}
		if hint != "" {
			fmt.Fprintf(&b, " (%s)", hint)
		}
	}
	if d := e.firstDescriptionLine(); d != "" {
		fmt.Fprintf(&b, ", description %q", d)
	}
	if e.TraceID != "" {
		fmt.Fprintf(&b, ", trace ID %q", truncate(e.TraceID, maxField))
	}
	if e.CorrelationID != "" {
		fmt.Fprintf(&b, ", correlation ID %q", truncate(e.CorrelationID, maxField))
	}
	if e.Timestamp != "" {
		fmt.Fprintf(&b, ", timestamp %q", truncate(e.Timestamp, maxField))
	}
	fmt.Fprintf(&b, ", authority %q", e.authority)
	if e.hint != "" {
		b.WriteString(": " + e.hint)
	}
	return b.String()
}

// aadsts returns the distinct AADSTS codes, in order, from error_codes or, when that is missing or not an
// array of numbers, from the description's "AADSTS<n>:" prefixes; at most maxCodes+1 of them, which is
// enough for the message to say that there are more than it shows.
func (e *entraError) aadsts() []int {
	var codes []int
	if json.Unmarshal(e.ErrorCodes, &codes) != nil || len(codes) == 0 {
		codes = nil
		for rest := e.Description; len(codes) < 8; {
			_, after, found := strings.Cut(rest, "AADSTS")
			if !found {
				break
			}
			digits := after[:len(after)-len(strings.TrimLeft(after, "0123456789"))]
			if n, err := strconv.Atoi(digits); err == nil && len(digits) <= 9 {
				codes = append(codes, n)
			}
			rest = after
		}
	}
	var distinct []int // in Entra's order: the first is the main one
	for _, c := range codes {
		if !slices.Contains(distinct, c) {
			distinct = append(distinct, c)
		}
		if len(distinct) > maxCodes { // enough to tell that there are more
			break
		}
	}
	return distinct
}

// firstDescriptionLine returns the description's first line (Entra separates lines with "\r\n"),
// without its AADSTS prefix, which the message already has, cut to maxDescription bytes.
func (e *entraError) firstDescriptionLine() string {
	d, _, _ := strings.Cut(e.Description, "\n")
	d = strings.TrimSpace(d)
	if after, ok := strings.CutPrefix(d, "AADSTS"); ok {
		if code, text, ok := strings.Cut(after, ":"); ok && strings.Trim(code, "0123456789") == "" {
			d = strings.TrimSpace(text)
		}
	}
	return truncate(d, maxDescription)
}
