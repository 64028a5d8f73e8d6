package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// TestFormats: each format's exact bytes, and -check's reading of them back.
func TestFormats(t *testing.T) {
	t.Parallel()
	exp := time.Unix(1700003600, 0)
	const tok = "eyJ.eyJ.sig"
	for _, tc := range []struct {
		format tokenFormat
		want   string
	}{
		{formatToken, tok},
		{formatHeader, "Authorization: Bearer " + tok + "\n"},
		{formatJSON, `{"access_token":"` + tok + `","token_type":"Bearer","expires_on":1700003600,"resource":"https://prometheus.monitor.azure.com"}` + "\n"},
	} {
		t.Run(tc.format.String(), func(t *testing.T) {
			got := tc.format.render(tok, exp, "https://prometheus.monitor.azure.com")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("render (-want +got):\n%s", diff)
			}
			back, err := tc.format.extract(got)
			if err != nil || back != tok {
				t.Errorf("extract = %q, %v; want the token", back, err)
			}
			parsed, err := parseFormat(tc.format.String())
			if err != nil || parsed != tc.format {
				t.Errorf("parseFormat(%q) = %v, %v", tc.format.String(), parsed, err)
			}
		})
	}
	if _, err := parseFormat("yaml"); err == nil || err.Error() != `unknown format "yaml": want one of token, header, json` {
		t.Errorf("parseFormat(yaml): %v", err)
	}
	for _, tc := range []struct {
		format  tokenFormat
		content string
		want    string
	}{
		{formatHeader, tok, "not one line"},
		{formatHeader, "Authorization: Bearer " + tok, "not one line"},
		{formatHeader, "Authorization: Basic " + tok + "\n", "not one line"},
		{formatJSON, tok, "not a JSON object"},
		{formatJSON, `{"access_token":"x"}`, `without "access_token", "token_type" or "expires_on"`},
		{formatJSON, `{"access_token":"x","token_type":"Bearer","expires_on":"1700003600"}`, `"expires_on" is not a number`},
	} {
		_, err := tc.format.extract(tc.content)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s.extract(%q): %v, want %q", tc.format, tc.content, err, tc.want)
		} else if strings.Contains(err.Error(), tok) {
			t.Errorf("%s.extract: the error quotes the content: %v", tc.format, err)
		}
	}
}

// TestHeaderFormatCurl: curl -H @file sends the header file's line as the Authorization header, the
// use the format is for. It skips where curl is missing.
func TestHeaderFormatCurl(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	const tok = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln"
	got := make(chan []string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Values("Authorization")
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "header")
	if err := os.WriteFile(file, []byte(formatHeader.render(tok, time.Now(), "r")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(curl, "-sS", "--noproxy", "*", "-H", "@"+file, srv.URL).CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if diff := cmp.Diff([]string{"Bearer " + tok}, <-got); diff != "" {
		t.Errorf("Authorization headers curl sent (-want +got):\n%s", diff)
	}
}

// TestJSONFormatShape: the JSON file decodes into the members an Azure client reads, expires_on a
// number.
func TestJSONFormatShape(t *testing.T) {
	t.Parallel()
	var v map[string]any
	if err := json.Unmarshal([]byte(formatJSON.render("t", time.Unix(42, 0), "https://management.azure.com/")), &v); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"access_token": "t", "token_type": "Bearer", "expires_on": float64(42), "resource": "https://management.azure.com/"}
	if diff := cmp.Diff(want, v); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// FuzzTokenFormatExtract: reading a token file back in any format never panics, never quotes the file
// in its error, and gives back what render wrote.
func FuzzTokenFormatExtract(f *testing.F) {
	f.Add("eyJ.eyJ.sig", "Authorization: Bearer x\n", `{"access_token":"x","token_type":"Bearer","expires_on":1}`)
	f.Add("", "Authorization: Bearer \n\n", `{"access_token":null}`)
	f.Fuzz(func(t *testing.T, token, header, js string) {
		for _, format := range []tokenFormat{formatToken, formatHeader, formatJSON} {
			for _, content := range []string{token, header, js} {
				if _, err := format.extract(content); err != nil && len(content) > 12 && strings.Contains(err.Error(), content) {
					t.Errorf("%s.extract: the error quotes the file: %v", format, err)
				}
			}
			if strings.ContainsAny(token, "\n") || !utf8.ValidString(token) {
				continue
			}
			back, err := format.extract(format.render(token, time.Unix(1, 0), "r"))
			if err != nil || back != token {
				t.Errorf("%s: render then extract = %q, %v; want %q", format, back, err, token)
			}
		}
	})
}
