package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The token file holds the access token in one of a fixed set of formats, chosen per file
// (BEARER_TOKEN_FORMAT for BEARER_TOKEN_FILE, ",FORMAT" in a BEARER_TOKEN_RESOURCES entry). There is
// no templating: each format is a few lines below, and -check reads each back.
type tokenFormat int

const (
	// formatToken is the bare access token, no trailing newline: what Prometheus' credentials_file,
	// client-go's BearerTokenFile and the Densify forwarder read. The default, byte for byte as ever.
	formatToken tokenFormat = iota
	// formatHeader is one HTTP header line, "Authorization: Bearer <token>\n", for curl -H @file and
	// proxies that add a header from a file. curl reads "a header for each line in the input file"
	// (curl's manual, -H, since 7.55.0) and strips the line ending, so the newline that makes the file
	// a text file does no harm to curl and helps readers that read lines.
	formatHeader
	// formatJSON is one JSON object, {"access_token","token_type","expires_on","resource"}, the members
	// Entra's v1 token response and Azure's own tools use, with "expires_on" as a JSON number of Unix
	// seconds, as "az account get-access-token" prints it since Azure CLI 2.54.0 ("a POSIX timestamp",
	// MicrosoftDocs/azure-docs-cli docs-ref-conceptual/includes/refresh-token.md). Entra's v1 response
	// and IMDS send it as a string of digits; a number is what jq and every JSON library compare as a
	// time without a conversion. It ends with a newline.
	formatJSON
)

// formatNames are the values BEARER_TOKEN_FORMAT takes, in tokenFormat order.
var formatNames = []string{"token", "header", "json"}

func (f tokenFormat) String() string { return formatNames[f] }

// parseFormat returns the format named s ("" is the default, "token"), or an error that lists the
// known names.
func parseFormat(s string) (tokenFormat, error) {
	if s == "" {
		return formatToken, nil
	}
	for i, name := range formatNames {
		if s == name {
			return tokenFormat(i), nil
		}
	}
	return 0, fmt.Errorf("unknown format %q: want one of %s", s, strings.Join(formatNames, ", "))
}

// headerPrefix starts a file in formatHeader.
const headerPrefix = "Authorization: Bearer "

// tokenFileJSON is formatJSON's object, members in this order.
type tokenFileJSON struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresOn   int64  `json:"expires_on"`
	Resource    string `json:"resource"`
}

// render returns the content of a token file in format f for the checked access token, which expires
// at expiry and is for resource (AZURE_RESOURCE, as sent to Entra).
func (f tokenFormat) render(token string, expiry time.Time, resource string) string {
	switch f {
	case formatHeader:
		return headerPrefix + token + "\n"
	case formatJSON:
		b, err := json.Marshal(tokenFileJSON{AccessToken: token, TokenType: "Bearer", ExpiresOn: expiry.Unix(), Resource: resource})
		if err != nil { // a struct of strings and an integer always marshals
			panic(err)
		}
		return string(b) + "\n"
	}
	return token
}

// extract returns the access token from content, a token file's content read back in format f, for
// -check. Its errors say what the file holds instead, never quoting it: it may hold a token.
func (f tokenFormat) extract(content string) (string, error) {
	switch f {
	case formatHeader:
		line, ok := strings.CutSuffix(content, "\n")
		token, found := strings.CutPrefix(line, headerPrefix)
		if !ok || !found || strings.Contains(token, "\n") {
			return "", fmt.Errorf("not one line %q followed by a newline (BEARER_TOKEN_FORMAT header)", headerPrefix+"<token>")
		}
		return token, nil
	case formatJSON:
		var v struct {
			AccessToken *string          `json:"access_token"`
			TokenType   *string          `json:"token_type"`
			ExpiresOn   *json.RawMessage `json:"expires_on"`
		}
		if err := json.Unmarshal([]byte(content), &v); err != nil {
			return "", errors.New("not a JSON object (BEARER_TOKEN_FORMAT json)")
		}
		if v.AccessToken == nil || v.TokenType == nil || v.ExpiresOn == nil {
			return "", errors.New("a JSON object without \"access_token\", \"token_type\" or \"expires_on\" (BEARER_TOKEN_FORMAT json)")
		}
		if _, err := strconv.ParseInt(string(*v.ExpiresOn), 10, 64); err != nil {
			return "", errors.New("\"expires_on\" is not a number of seconds (BEARER_TOKEN_FORMAT json)")
		}
		return *v.AccessToken, nil
	}
	return content, nil
}
