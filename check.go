package main

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// tokenAlgorithms is the allow-list of JWS algorithms an access token may be parsed with. Entra signs
// with RS256; the other asymmetric ones are there in case it moves. "none" and HMAC are never
// accepted. The signature is not verified either way (see [checkToken]).
var tokenAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384, jose.ES512,
}

// maxTokenType is the longest token_type quoted in a message, in bytes: token types are short names
// (Bearer, PoP, N_A), and a longer value may be the token, from a gateway that swapped the fields.
const maxTokenType = 16

// maxAudiences is how many "aud" values a message quotes, each cut to 2*maxField bytes: the token is
// the server's to write.
const maxAudiences = 4

// issued is a token that was checked and published: its claims, and when it was received by the
// job's clock, from which its renewal is scheduled. throttled is true when the attempts at it were
// refused (429) [throttledFailures] times or more, counted from there when the token file held our own
// token, expired or about to, before it: refresh mode then starts congested ([congestion]).
type issued struct {
	tokenClaims
	received  time.Time
	throttled bool
}

// tokenClaims is what the checks learned from the access token: the "aud" value that matched the
// expected audience and the "exp" time.
type tokenClaims struct {
	matchedAudience string
	expiry          time.Time
}

// jwtClaims are the claims of an access token this program reads, none verified: "aud", "exp" and
// "nbf" (zero when absent), and who it was issued to, to tell whether a token file holds a token for
// the configured identity: the tenant ("tid") and the client ID ("appid" in v1.0 tokens, "azp" in v2.0,
// https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference).
type jwtClaims struct {
	aud               []string
	expiry, notBefore time.Time
	tenant, clientID  string
}

// checkToken checks the token response before anything is written: token_type is Bearer (any case,
// RFC 6749 section 7.1), the access token is a JWS compact JWT with no white space or control
// characters, its "aud" (a string or an array, RFC 7519 section 4.1.3) holds audience (or audience
// give or take one trailing slash), its "exp" (seconds since the epoch) is after now, and its "nbf",
// if any, is at most maxClockSkew after now. "iat" is not checked: Entra backdates it, and "nbf",
// by 5 minutes, and node clocks drift.
//
// The signature is not verified, on purpose: the token is for another API, and Microsoft says clients
// must not validate such tokens (https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens);
// it came over TLS from the authority. The check catches misconfiguration, not forgery.
//
// Errors name the claims they quote, never the token.
func checkToken(resp *tokenResponse, audience string, now time.Time) (tokenClaims, error) {
	if !strings.EqualFold(resp.TokenType, "Bearer") {
		if len(resp.TokenType) > maxTokenType { // not a token type's name: maybe the token itself
			return tokenClaims{}, fmt.Errorf("token_type is a %d-byte value, want \"Bearer\"", len(resp.TokenType))
		}
		return tokenClaims{}, fmt.Errorf("token_type is %q, want \"Bearer\"", resp.TokenType)
	}
	c, err := parseClaims(resp.AccessToken)
	if err != nil {
		return tokenClaims{}, err
	}
	auds, exp := c.aud, c.expiry
	i := slices.IndexFunc(auds, func(a string) bool { return sameAudience(a, audience) })
	if i < 0 {
		return tokenClaims{}, audienceError(auds, audience)
	}
	if exp.IsZero() {
		return tokenClaims{}, errors.New("the token has no \"exp\" claim")
	}
	if !exp.After(now) {
		return tokenClaims{}, fmt.Errorf("the token expired at %s, %s ago by this machine's clock: check the node's clock (NTP)",
			timestamp(exp), now.Sub(exp).Round(time.Second))
	}
	if err := notYetValid(c.notBefore, now); err != nil {
		return tokenClaims{}, err
	}
	return tokenClaims{matchedAudience: auds[i], expiry: exp}, nil
}

// notYetValid returns an error when nbf lies more than maxClockSkew after now: a token that is not
// valid yet (nbf 10 years ahead) would be written, called valid by -check and renewed in years.
func notYetValid(nbf, now time.Time) error {
	if nbf.After(now.Add(maxClockSkew)) {
		return fmt.Errorf("the token is not valid before %s (nbf), %s from now by this machine's clock, more than the %s of clock skew allowed: check the node's clock (NTP)",
			timestamp(nbf), nbf.Sub(now).Round(time.Second), maxClockSkew)
	}
	return nil
}

// parseTokenClaims decodes the payload of token, a JWS compact JWT, without verifying its signature,
// and returns its "aud" values and its "exp" time (zero when absent).
func parseTokenClaims(token string) (aud []string, exp time.Time, err error) {
	c, err := parseClaims(token)
	return c.aud, c.expiry, err
}

// parseClaims decodes the payload of token, a JWS compact JWT, without verifying its signature.
func parseClaims(token string) (jwtClaims, error) {
	if strings.ContainsFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return jwtClaims{}, errors.New("the access token holds white space or control characters")
	}
	parsed, err := jwt.ParseSigned(token, tokenAlgorithms)
	if err != nil {
		return jwtClaims{}, errors.New("the access token is not a signed JWT (an opaque or encrypted token for this resource?)")
	}
	var claims jwt.Claims
	var entra struct {
		Tenant string `json:"tid"`
		AppID  string `json:"appid"`
		AZP    string `json:"azp"`
	}
	if err := parsed.UnsafeClaimsWithoutVerification(&claims); err != nil {
		return jwtClaims{}, errors.New("the access token's claims are not valid JSON with the registered claim types of RFC 7519")
	}
	_ = parsed.UnsafeClaimsWithoutVerification(&entra) // only to recognise a token file of ours: absent or odd reads as none
	c := jwtClaims{aud: claims.Audience, tenant: entra.Tenant, clientID: cmp.Or(entra.AppID, entra.AZP)}
	if claims.Expiry != nil {
		c.expiry = claims.Expiry.Time()
	}
	if claims.NotBefore != nil {
		c.notBefore = claims.NotBefore.Time()
	}
	return c, nil
}

// sameAudience reports whether aud equals want, or differs from it by one trailing slash: Entra issues
// "https://management.azure.com/" for the resource "https://management.azure.com".
func sameAudience(aud, want string) bool {
	return aud == want || aud == want+"/" || aud+"/" == want
}

// isGUID reports whether s has the 8-4-4-4-12 hexadecimal form of a GUID, as application IDs do.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if r != '-' {
				return false
			}
		} else if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
			return false
		}
	}
	return true
}

// audienceError explains a token whose "aud" values auds do not include want, quoting at most
// maxAudiences of them.
func audienceError(auds []string, want string) error {
	if len(auds) == 0 {
		return fmt.Errorf("the token has no \"aud\" claim, want %q", want)
	}
	quoted := make([]string, 0, maxAudiences+1)
	for i, a := range auds {
		if i == maxAudiences {
			quoted = append(quoted, fmt.Sprintf("and %d more", len(auds)-i))
			break
		}
		quoted = append(quoted, fmt.Sprintf("%q", truncate(a, 2*maxField)))
	}
	got := quoted[0]
	if len(auds) > 1 {
		got = "[" + strings.Join(quoted, " ") + "]"
	}
	msg := fmt.Sprintf("the token's audience (aud) is %s, want %q (AZURE_RESOURCE, or BEARER_TOKEN_AUDIENCE when set)", got, want)
	if slices.ContainsFunc(auds, isGUID) && !isGUID(want) {
		msg += ": a GUID audience is the API's client ID, as in v2.0 access tokens (v1.0 tokens carry the App ID URI); if this API issues v2.0 tokens, set BEARER_TOKEN_AUDIENCE to that GUID"
	}
	return errors.New(msg)
}

// timestamp formats t for messages and the log: UTC, RFC 3339, to the second.
func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
