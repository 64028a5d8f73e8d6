package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The request: one HTTP exchange with a token endpoint, its response read with the rigour of
// golang.org/x/oauth2, and the retries around the attempts of a source.

// proxyFor returns the proxy that net/http will use for endpoint, as it reads HTTPS_PROXY and NO_PROXY
// from the process's environment ([loadConfig] has checked them), with any password replaced by
// "xxxxx"; "none" for a direct connection.
func proxyFor(endpoint string) string {
	req, err := http.NewRequest(http.MethodPost, endpoint, nil)
	if err != nil {
		return "none"
	}
	if u, err := http.ProxyFromEnvironment(req); err == nil && u != nil {
		return u.Redacted()
	}
	return "none"
}

// Limits of the exchange.
const (
	attemptTimeout  = 30 * time.Second // for one request and its response body
	maxResponseSize = 1 << 20          // bytes of response body read; a token response is a few KiB
)

// newHTTPClient returns the client for the token request: proxies from HTTPS_PROXY and NO_PROXY, the
// system's CAs (or SSL_CERT_FILE, SSL_CERT_DIR), TLS 1.2 or later, and no redirects, which would carry
// the client secret to another URL. It speaks HTTP/1.1 only: one request gains nothing from HTTP/2, so
// release builds leave HTTP/2 out altogether (-tags nethttpomithttp2), which makes the binary 370 KB
// smaller, and tests speak the same protocol as releases. Each attempt is one request on a connection of
// its own (no keep-alive): reuse would save nothing, and bytes a server sends on an idle connection make
// net/http print them, up to 4 KiB of what might be a token, to standard error.
func newHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DisableKeepAlives:     true,
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: attemptTimeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// tokenResponse is the part of a token endpoint response this program reads. The v1 endpoint sends
// expires_in, expires_on, not_before and ext_expires_in as JSON strings and v2 as numbers; the token's own
// "exp" claim is what counts, so they are not decoded at all and can never fail a run.
type tokenResponse struct {
	AccessToken string
	TokenType   string
	entraError
}

// decodeTokenResponse decodes a token endpoint response, a JSON object, leniently: a member that is
// not a string, such as a number where a string was expected, reads as absent instead of failing the
// whole response, so that the message says what is missing.
func decodeTokenResponse(body []byte) (tokenResponse, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return tokenResponse{}, err
	}
	str := func(name string) string {
		var s string
		_ = json.Unmarshal(members[name], &s)
		return s
	}
	return tokenResponse{
		AccessToken: str("access_token"),
		TokenType:   str("token_type"),
		entraError: entraError{
			Code:          str("error"),
			Description:   str("error_description"),
			ErrorCodes:    members["error_codes"],
			Timestamp:     str("timestamp"),
			TraceID:       str("trace_id"),
			CorrelationID: str("correlation_id"),
		},
	}, nil
}

// retryable marks a failed attempt that may succeed later. retryAfter is the server's Retry-After, zero
// when it sent none; throttled is true for 429 Too Many Requests: the server is well, and refuses this
// client's share (RFC 6585 section 4), where a 503 says it is not.
type retryable struct {
	err        error
	retryAfter time.Duration
	throttled  bool
}

// retryAnswer returns err as [retryable], with resp's Retry-After and whether resp is a 429.
func retryAnswer(resp *http.Response, err error) *retryable {
	return &retryable{err: err, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		throttled: resp.StatusCode == http.StatusTooManyRequests}
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// requestToken calls try, one attempt at a token (a source's, see [source]), and returns the token
// response, retrying what [retryable] marks for as long as ctx's deadline (BEARER_TOKEN_TIMEOUT)
// leaves time for another attempt, with no fixed count: a tenant throttling a rollout of hundreds of
// pods admits them over tens of seconds. Each wait is [firstTokenWait]'s: spread at random, a
// Retry-After its floor; counted from failed, the failures taken as already seen (0, or
// [throttledFailures] after a lost token). endpoint names where the attempts go, for messages. Each
// failure is one log line; the error says why the last attempt failed (when the deadline cut an
// attempt short, also why the one before failed) and never holds the form or a response body.
// refusals is the count at the success: failed plus the attempts refused with 429 (network errors and
// outages are no crowd).
func requestToken(ctx context.Context, endpoint string, failed int, try func(context.Context) (*tokenResponse, error), log *slog.Logger) (resp *tokenResponse, refusals int, err error) {
	var prev time.Duration
	var prevErr error
	refusals = failed
	for attempt := 1; ; attempt++ {
		resp, err := try(ctx)
		if err == nil {
			return resp, refusals, nil
		}
		if ctx.Err() != nil {
			if prevErr != nil {
				return nil, 0, fmt.Errorf("requesting access token from %q: %w (after: %w)", endpoint, context.Cause(ctx), prevErr)
			}
			return nil, 0, fmt.Errorf("requesting access token from %q: %w", endpoint, context.Cause(ctx))
		}
		prevErr = err
		r, ok := errors.AsType[*retryable](err)
		if !ok {
			return nil, 0, err
		}
		if r.throttled {
			refusals++
		}
		left := time.Duration(math.MaxInt64)
		if deadline, ok := ctx.Deadline(); ok {
			left = time.Until(deadline)
		}
		delay, ok := firstTokenWait(failed+attempt, prev, r.retryAfter, left, rand.Float64())
		if !ok {
			if r.retryAfter > 0 && r.retryAfter > left-lastAttemptRoom {
				return nil, 0, fmt.Errorf("giving up after %d attempts: the server asked to retry after %s (Retry-After), past the deadline %s from now (BEARER_TOKEN_TIMEOUT): %w",
					attempt, r.retryAfter, left.Round(time.Second), err)
			}
			return nil, 0, fmt.Errorf("giving up after %d attempts, too little time left for another (BEARER_TOKEN_TIMEOUT): %w", attempt, err)
		}
		prev = delay
		log.Warn("token request failed, retrying", "attempt", attempt, "retry_in", delay.Round(time.Millisecond).String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("requesting access token from %q: %w (after %d attempts, the last: %w)", endpoint, context.Cause(ctx), attempt, err)
		case <-time.After(delay):
		}
	}
}

// postForm makes one attempt: a form POST to endpoint, bounded by attemptTimeout, and the response read
// through [send] and [interpretResponse].
func postForm(ctx context.Context, client *http.Client, endpoint string, form url.Values) (*tokenResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("building token request for %q: %w", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "azure-rest-api-token/"+programVersion())
	resp, body, err := send(client, req)
	if err != nil {
		return nil, err
	}
	return interpretResponse(resp, body)
}

// send sends req with client and returns the response with its body, at most maxResponseSize bytes
// (more is an error, not a truncation); the body is closed. Network errors are [retryable], except
// certificate errors, which will not go away on their own; their text is cut to maxNetErrorText bytes
// ([boundedError]). Errors name req's URL without its query.
func send(client *http.Client, req *http.Request) (*http.Response, []byte, error) {
	endpoint := (&url.URL{Scheme: req.URL.Scheme, Host: req.URL.Host, Path: req.URL.Path}).String()
	resp, err := client.Do(req)
	if err != nil {
		if e, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
			return nil, nil, fmt.Errorf("sending token request to %q: %w", endpoint, certificateError(e))
		}
		return nil, nil, &retryable{err: fmt.Errorf("sending token request: %w", boundedError{err})}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return nil, nil, &retryable{err: fmt.Errorf("reading token response from %q (HTTP %d): %w", endpoint, resp.StatusCode, boundedError{err})}
	}
	if len(body) > maxResponseSize {
		return nil, nil, fmt.Errorf("reading token response from %q (HTTP %d): larger than %d bytes", endpoint, resp.StatusCode, maxResponseSize)
	}
	return resp, body, nil
}

// maxNetErrorText bounds the text of a network error, in bytes: enough for the request's URL and
// net/http's reason.
const maxNetErrorText = 600

// boundedError is a network error whose text is cut to maxNetErrorText bytes: net/http builds some from
// what the server sent, such as a malformed header line ("malformed MIME header line: …"), which may be
// megabytes long, and a retry logs it again each time.
type boundedError struct{ err error }

func (e boundedError) Error() string { return truncate(e.err.Error(), maxNetErrorText) }
func (e boundedError) Unwrap() error { return e.err }

// certificateError explains why the server's certificate was refused, with the advice that fits:
// SSL_CERT_FILE only for an unknown authority. A certificate is the server's to write: the names it
// lists are quoted, and only a few of them. Certificate errors are not retried; they will not go away
// on their own.
func certificateError(e *tls.CertificateVerificationError) error {
	if h, ok := errors.AsType[x509.HostnameError](e.Err); ok && h.Certificate != nil {
		all := slices.Clone(h.Certificate.DNSNames)
		for _, ip := range h.Certificate.IPAddresses {
			all = append(all, ip.String())
		}
		var names []string
		for i, n := range all {
			if i == 4 {
				names = append(names, fmt.Sprintf("%d more", len(all)-i))
				break
			}
			names = append(names, fmt.Sprintf("%q", truncate(n, 64)))
		}
		if len(names) == 0 {
			names = []string{"no name"}
		}
		return fmt.Errorf("the server's certificate is not for host %q but for %s: the connection reached another server than AZURE_AUTHORITY_HOST names (a wrong authority host, DNS entry or proxy); trusting another CA would not fix this", h.Host, strings.Join(names, ", "))
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](e.Err); ok {
		return fmt.Errorf("%w (to trust a private CA or a TLS-inspecting proxy, add its certificate with SSL_CERT_FILE)", e.Err)
	}
	if c, ok := errors.AsType[x509.CertificateInvalidError](e.Err); ok && c.Reason == x509.Expired {
		return fmt.Errorf("%w (check the node's clock)", e.Err)
	}
	return e.Err
}

// truncate returns s cut to at most n bytes, on a character boundary, with "…" when it was cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// retryableStatus holds the HTTP statuses worth another attempt: timeouts, throttling and server
// errors (RFC 9110 section 15.6; Entra's own guidance to retry 429 and 5xx with backoff,
// https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes#handling-error-codes-in-your-application).
var retryableStatus = map[int]bool{
	http.StatusRequestTimeout:      true,
	http.StatusTooManyRequests:     true,
	http.StatusInternalServerError: true,
	http.StatusBadGateway:          true,
	http.StatusServiceUnavailable:  true,
	http.StatusGatewayTimeout:      true,
}

// neverRetried holds the statuses of a refused request, never retried, not even with
// "temporarily_unavailable": the same request would be refused again.
var neverRetried = map[int]bool{http.StatusBadRequest: true, http.StatusUnauthorized: true}

// retryableAnswer is the one rule for which answers of a token endpoint are worth another attempt:
// status, and code, the OAuth "error" of a JSON body ("" for none). It is retryableStatus, and
// "temporarily_unavailable" but with neverRetried's statuses. Another endpoint (a managed identity's,
// with statuses of its own) extends it here, so that every wait in the program follows one rule.
func retryableAnswer(status int, code string) bool {
	return retryableStatus[status] || code == "temporarily_unavailable" && !neverRetried[status]
}

// interpretResponse turns resp, whose body has been read into body, into a token response or an error,
// with the rigour of golang.org/x/oauth2's internal/token.go: a non-2xx status, a 2xx carrying "error",
// and a 2xx without "access_token" all fail. Errors are [retryable] for retryableStatus and for
// "temporarily_unavailable" (RFC 6749 section 4.1.2.1) but with 400 and 401, and carry Retry-After.
func interpretResponse(resp *http.Response, body []byte) (*tokenResponse, error) {
	authority := resp.Request.URL.Scheme + "://" + resp.Request.URL.Host + "/"
	tr, jsonErr := decodeTokenResponse(body)
	// The reason phrase is the server's to choose: print the standard one.
	tr.entraError.status = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	tr.entraError.authority = authority
	var err error
	switch {
	case jsonErr != nil:
		err = notJSONError(resp, authority, len(body))
	case resp.StatusCode < 200 || resp.StatusCode > 299 || tr.Code != "":
		e := tr.entraError
		err = &e
	case tr.AccessToken == "":
		err = fmt.Errorf("token response from %q (%d %s) has no access_token", authority, resp.StatusCode, http.StatusText(resp.StatusCode))
	default:
		return &tr, nil
	}
	if retryableAnswer(resp.StatusCode, tr.Code) {
		return nil, retryAnswer(resp, err)
	}
	return nil, err
}

// notJSONError describes a response from authority that is not JSON, such as a proxy's HTML error page or a plain-text
// 429, by its status, media type and size: never by its content.
func notJSONError(resp *http.Response, authority string, size int) error {
	msg := fmt.Sprintf("token response from %q: %d %s, not a JSON object (Content-Type %q, %d bytes)", authority, resp.StatusCode, http.StatusText(resp.StatusCode), truncate(resp.Header.Get("Content-Type"), maxField), size)
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		msg += fmt.Sprintf(": a redirect to %q, not followed: check AZURE_AUTHORITY_HOST", truncate(resp.Header.Get("Location"), 2*maxField))
	case resp.StatusCode == http.StatusOK:
		msg += ": cut short, or not from Entra"
	case resp.StatusCode != http.StatusTooManyRequests:
		msg += ": a proxy or gateway answered, not Entra?"
	}
	return errors.New(msg)
}

// maxRetryAfter caps a Retry-After, in seconds, below time.Duration's overflow; any wait this long is
// past every deadline anyway.
const maxRetryAfter = 1 << 32

// parseRetryAfter returns the wait a Retry-After header value asks for, in delay-seconds or as an
// HTTP-date (RFC 9110 section 10.2.3), relative to now; zero for an empty, invalid or past value.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		return time.Duration(min(secs, maxRetryAfter)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
