package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// FuzzParseServicePrincipal: the service principal parser never panics, accepts only complete
// credentials with a valid tenant (and a password, or null for a certificate), and never puts the
// password into an error.
func FuzzParseServicePrincipal(f *testing.F) {
	for _, seed := range []string{
		`{"appId":"a","displayName":"d","password":"p4ssw0rd-secret","tenant":"contoso.com"}`,
		"\xef\xbb\xbf" + `{"appId":"a","displayName":"d","password":"p4ssw0rd-secret","tenant":"t","name":"n"}`,
		`{"appId":"a","displayName":"d","password":null,"tenant":"t","fileWithCertAndPrivateKey":"/x.pem"}`,
		`{"clientId":"a","clientSecret":"p4ssw0rd-secret","tenantId":"t"}`,
		`{"appId":"a","displayName":"d","password":p4ssw0rd-secret,"tenant":"t"}`,
		`{"appId":"a","displayName":"d","password":12345678,"tenant":"t"}`,
		"\xff\xfe{\x00}\x00",
		`[]`, ``, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sp, err := parseServicePrincipal(data)
		if err != nil {
			if secret := passwordIn(data); len(secret) >= 6 && strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q holds the password %q", err, secret)
			}
			return
		}
		if sp.AppID == "" || sp.DisplayName == "" || sp.Tenant == "" || checkTenant(sp.Tenant) != nil ||
			sp.Password == "" && !bytes.Contains(data, []byte("null")) {
			t.Fatalf("accepted an incomplete or invalid credential: %+v", sp)
		}
	})
}

// passwordIn returns what data holds as "password", as a string or as the raw text of any other value.
func passwordIn(data []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), &m) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(m["password"], &s) == nil {
		return s
	}
	return string(m["password"])
}

// FuzzInterpretResponse: whatever the status, headers and body of the token response, interpretResponse
// never panics, succeeds only with an access token, never puts the access token into an error, and
// bounds the error's length.
func FuzzInterpretResponse(f *testing.F) {
	token, err := entratest.SignToken(map[string]any{"aud": "x"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(200, "", string(entratest.TokenBody(token, "Bearer", "r", time.Now())))
	f.Add(200, "", `{"access_token":"tok-123456","token_type":"Bearer","expires_in":3599}`)
	f.Add(400, "", string(entratest.ErrorBody(400, "invalid_request", 90002, "Tenant not found.")))
	f.Add(401, "", `{"error":"invalid_client","error_codes":"x","error_description":"AADSTS7000215: bad\r\nTrace ID: 1"}`)
	f.Add(200, "", `{"error":"temporarily_unavailable","access_token":"tok-123456"}`)
	f.Add(429, "120", `Too many requests`)
	f.Add(503, "Wed, 21 Oct 2015 07:28:00 GMT", `<html>`)
	f.Add(302, "", ``)
	f.Add(401, "", `{"error":"invalid_client","error_codes":[7000215,7000215,7000215,1,2,3,4,5],"trace_id":"`+strings.Repeat("t", 5000)+`"}`)
	f.Fuzz(func(t *testing.T, status int, retryAfter, body string) {
		if status < 100 || status > 999 {
			return
		}
		u, _ := url.Parse("https://login.example/t/oauth2/token")
		resp := &http.Response{StatusCode: status, Status: http.StatusText(status), Header: http.Header{"Retry-After": {retryAfter}},
			Body: io.NopCloser(strings.NewReader(body)), Request: &http.Request{URL: u}}
		tr, err := interpretResponse(resp, []byte(body))
		if err == nil {
			if tr.AccessToken == "" {
				t.Fatal("success without an access token")
			}
			return
		}
		if len(err.Error()) > maxErrorText {
			t.Fatalf("error is %d bytes, more than %d, for a %d-byte body", len(err.Error()), maxErrorText, len(body))
		}
		// The error quotes the documented error fields, so a token that also stands in one of them is
		// not a leak.
		m, jsonErr := decodeTokenResponse([]byte(body))
		quoted := m.Code + m.Description + m.TraceID + m.CorrelationID + m.Timestamp
		if jsonErr == nil && len(m.AccessToken) >= 6 && strings.Contains(err.Error(), m.AccessToken) &&
			!strings.Contains(quoted, m.AccessToken) {
			t.Fatalf("error %q holds the access token", err)
		}
	})
}

// FuzzParseTokenClaims: the audience extraction never panics on any token, and its errors never hold
// the token.
func FuzzParseTokenClaims(f *testing.F) {
	for _, claims := range []map[string]any{
		{"aud": "https://prometheus.monitor.azure.com", "exp": 2000000000},
		{"aud": []string{"a", "b"}},
		{"aud": 42},
		{"exp": "soon"},
	} {
		token, err := entratest.SignToken(claims)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(token)
	}
	f.Add("eyJhbGciOiJub25lIn0.eyJhdWQiOiJ4In0.")
	f.Add("a.b.c")
	f.Add("not a token")
	f.Fuzz(func(t *testing.T, token string) {
		aud, _, err := parseTokenClaims(token)
		if err != nil {
			// The message is fixed text: no long piece of the token may appear in it.
			for piece := range strings.SplitSeq(token, ".") {
				if len(piece) >= 16 && strings.Contains(err.Error(), piece) {
					t.Fatalf("error %q holds part of the token", err)
				}
			}
			return
		}
		_ = audienceError(aud, "https://prometheus.monitor.azure.com")
	})
}

// FuzzParseCertificatePEM: the certificate file parser never panics, accepts only an RSA key with a
// certificate it matches, and never puts the key into an error.
func FuzzParseCertificatePEM(f *testing.F) {
	key, err := entratest.RSAKey(2048)
	if err != nil {
		f.Fatal(err)
	}
	cert, err := entratest.NewCertificate(key, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	f.Add(append(append([]byte{}, certPEM...), keyPEM...))
	f.Add(append(append([]byte{}, keyPEM...), certPEM...))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: keyDER}))
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseCertificatePEM(data, time.Now())
		if err != nil {
			for rest := data; ; {
				var b *pem.Block
				if b, rest = pem.Decode(rest); b == nil {
					break
				}
				body := strings.Join(strings.Split(string(pem.EncodeToMemory(b)), "\n")[1:2], "")
				if strings.Contains(b.Type, "PRIVATE KEY") && len(body) >= 16 && strings.Contains(err.Error(), body) {
					t.Fatalf("error %q holds the key", err)
				}
			}
			return
		}
		if c.key == nil || c.leaf == nil || !c.key.PublicKey.Equal(c.leaf.PublicKey) {
			t.Fatal("accepted a key without its certificate")
		}
	})
}

// FuzzEscapeControl: whatever an error holds, the termination message built from it has no control,
// format or line-separator character and is valid UTF-8, and text without any of those is kept as it
// is.
func FuzzEscapeControl(f *testing.F) {
	for _, s := range []string{"plain text ✓", "a\nb\r\n", "\x1b[8mhidden\x1b[0m", "\u202eevil\u2028", "\xff\xfe\x00", `back\slash \n`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := escapeControl(s)
		if !utf8.ValidString(got) {
			t.Fatalf("escapeControl(%q) = %q: not valid UTF-8", s, got)
		}
		if i := strings.IndexFunc(got, func(r rune) bool {
			return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp)
		}); i >= 0 {
			t.Fatalf("escapeControl(%q) = %q: control character at %d", s, got, i)
		}
		if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
			return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp)
		}) && got != s {
			t.Fatalf("escapeControl(%q) = %q: changed printable text", s, got)
		}
	})
}

// FuzzArcChallenge: whatever Azure Arc's challenge (WWW-Authenticate) says, a key file is accepted
// only directly in the token directory, as a .key file, with no "." or ".." in its path and a name
// the file system can hold; and the refusal is one line of bounded length.
func FuzzArcChallenge(f *testing.F) {
	dir := "/var/opt/azcmagent/tokens"
	for _, s := range []string{"Basic realm=" + dir + "/a.key", "Basic realm=/etc/shadow", "basic realm=" + dir + "/../x.key",
		"Basic realm=" + dir + "/a.key\n", "Bearer realm=x", "Basic realm=", "Basic  realm=" + dir + "/.key", "", "Basic realm=" + dir + "/" + strings.Repeat("a", 5000) + ".key"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, challenge string) {
		path, err := arcKeyPath(challenge)
		if err == nil {
			err = arcKeyFile(path, dir)
		}
		if err != nil {
			if len(err.Error()) > maxErrorText || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("refusal is %d bytes or not one line: %q", len(err.Error()), err)
			}
			return
		}
		if filepath.Dir(path) != dir || filepath.Ext(path) != ".key" || filepath.Clean(path) != path || strings.Contains(path, "..") || len(filepath.Base(path)) > 255 {
			t.Fatalf("accepted %q from %q", path, challenge)
		}
	})
}

// FuzzManagedIdentityResponse: whatever a managed identity endpoint answers, interpret never panics,
// succeeds only with an access token, never puts the access token into an error, and its error is one
// line of bounded length.
func FuzzManagedIdentityResponse(f *testing.F) {
	token, err := entratest.SignToken(map[string]any{"aud": "x"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(200, "", `{"access_token":"`+token+`","token_type":"Bearer","expires_on":"1506484173"}`)
	f.Add(200, "", `{"access_token":"`+token+`","expires_on":"06/19/2019 23:42:01 +00:00","expires_in":3599}`)
	f.Add(400, "", `{"error":"invalid_request","error_description":"Identity not found"}`)
	f.Add(500, "", `{"statusCode":500,"message":"An unexpected error occured while fetching the AAD Token."}`)
	f.Add(410, "", `<html>updating</html>`)
	f.Add(429, "5", `{"error":"invalid_request","error_description":"Temporarily throttled, too many requests"}`)
	f.Add(502, "", "\x1b[31mBad Gateway")
	f.Fuzz(func(t *testing.T, status int, retryAfter, body string) {
		if status < 100 || status > 999 {
			return
		}
		u, _ := url.Parse("http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01")
		resp := &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {retryAfter}, "Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(body)), Request: &http.Request{URL: u}}
		for _, host := range []miHost{hostIMDS, hostAppService, hostArc, hostServiceFabric} {
			s := &managedIdentitySource{id: miSelector{"client_id", "5a0f7e1b-aaaa-4bbb-8ccc-000000000003"}, host: host, endpoint: u}
			tr, err := s.interpret(host, resp, []byte(body))
			if err == nil {
				if tr.AccessToken == "" {
					t.Fatal("success without an access token")
				}
				continue
			}
			if len(err.Error()) > maxErrorText || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error is %d bytes or not one line: %q", len(err.Error()), err)
			}
			m, jsonErr := decodeTokenResponse([]byte(body))
			quoted := m.Code + m.Description + m.TraceID + m.CorrelationID + m.Timestamp
			if jsonErr == nil && len(m.AccessToken) >= 6 && strings.Contains(err.Error(), m.AccessToken) && !strings.Contains(quoted, m.AccessToken) {
				t.Fatalf("error %q holds the access token", err)
			}
		}
	})
}
