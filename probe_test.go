package main

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// TestCheck runs -check over each state the token file can be in. It must read only its three
// variables (and nothing of the credential), print exactly one line, exit 0 only for a token for the
// audience that is valid for more than the margin, and never make a termination message.
func TestCheck(t *testing.T) {
	t.Parallel()
	// in is an "exp" claim d from when the file is written: the table is built long before.
	type in time.Duration
	write := func(content string) func(t *testing.T, path string) {
		return func(t *testing.T, path string) { mustDo(t, os.WriteFile(path, []byte(content), 0o644)) }
	}
	token := func(claims map[string]any) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if d, ok := claims["exp"].(in); ok {
				claims = maps.Clone(claims)
				claims["exp"] = time.Now().Add(time.Duration(d)).Unix()
			}
			write(tokenFor(t, claims))(t, path)
		}
	}
	for _, tc := range []struct {
		name     string
		env      map[string]string // over BEARER_TOKEN_FILE and AZURE_RESOURCE
		file     func(t *testing.T, path string)
		wantExit int
		wantOut  string
	}{
		{name: "valid for an hour", file: token(nil), wantOut: "valid until"},
		{name: "aud with a trailing slash", file: token(map[string]any{"aud": entratest.PrometheusResource + "/"}), wantOut: "valid until"},
		{name: "aud array", file: token(map[string]any{"aud": []string{"https://a", entratest.PrometheusResource}}), wantOut: "valid until"},
		{name: "BEARER_TOKEN_AUDIENCE wins", env: map[string]string{"BEARER_TOKEN_AUDIENCE": "6e2b1c3d-aaaa-4bbb-8ccc-0123456789ab"},
			file: token(map[string]any{"aud": "6e2b1c3d-aaaa-4bbb-8ccc-0123456789ab"}), wantOut: "valid until"},
		{name: "BEARER_TOKEN_AUDIENCE alone", env: map[string]string{"AZURE_RESOURCE": "", "BEARER_TOKEN_AUDIENCE": entratest.PrometheusResource},
			file: token(nil), wantOut: "valid until"},
		{name: "3 minutes left, BEARER_TOKEN_MIN_VALIDITY 1m", env: map[string]string{"BEARER_TOKEN_MIN_VALIDITY": "1m"},
			file: token(map[string]any{"exp": in(3 * time.Minute)}), wantOut: "valid until"},
		{name: "expiring, BEARER_TOKEN_MIN_VALIDITY 0", env: map[string]string{"BEARER_TOKEN_MIN_VALIDITY": "0"},
			file: token(map[string]any{"exp": in(10 * time.Second)}), wantOut: "valid until"},

		{name: "missing", wantExit: 3, wantOut: "does not exist"},
		{name: "empty", file: write(""), wantExit: 3, wantOut: "is empty"},
		{name: "a directory", file: func(t *testing.T, path string) { mustDo(t, os.Mkdir(path, 0o755)) }, wantExit: 3, wantOut: "a directory, not a file: name a file inside it"},
		{name: "a FIFO, not blocking", file: func(t *testing.T, path string) { mustDo(t, syscall.Mkfifo(path, 0o644)) }, wantExit: 3, wantOut: "not a regular file"},
		{name: "not a JWT", file: write("opaque-token-value"), wantExit: 3, wantOut: "not a signed JWT"},
		{name: "a trailing newline", file: func(t *testing.T, path string) { write(tokenFor(t, nil)+"\n")(t, path) }, wantExit: 3, wantOut: "white space"},
		{name: "larger than 1 MiB", file: write(strings.Repeat("A", 1<<20+1)), wantExit: 3, wantOut: "larger than"},
		{name: "wrong audience", file: token(map[string]any{"aud": "https://management.azure.com/"}), wantExit: 3,
			wantOut: `the token's audience (aud) is "https://management.azure.com/", want "https://prometheus.monitor.azure.com"`},
		{name: "no aud", file: token(map[string]any{"aud": nil}), wantExit: 3, wantOut: `no "aud" claim`},
		{name: "no exp", file: token(map[string]any{"exp": nil}), wantExit: 3, wantOut: `no "exp" claim`},
		{name: "expired", file: token(map[string]any{"exp": in(-90 * time.Second)}), wantExit: 3, wantOut: "the token expired 1m3"},
		{name: "expires in 4.5 minutes", file: token(map[string]any{"exp": in(4*time.Minute + 30*time.Second)}), wantExit: 3,
			wantOut: "the token expires in 4m"},
		{name: "expires in 20 minutes, BEARER_TOKEN_MIN_VALIDITY 30m", env: map[string]string{"BEARER_TOKEN_MIN_VALIDITY": "30m"},
			file: token(map[string]any{"exp": in(20 * time.Minute)}), wantExit: 3, wantOut: "not more than BEARER_TOKEN_MIN_VALIDITY (30m0s)"},

		{name: "BEARER_TOKEN_FILE unset", env: map[string]string{"BEARER_TOKEN_FILE": ""}, wantExit: 1, wantOut: "BEARER_TOKEN_FILE is not set"},
		{name: "no audience", env: map[string]string{"AZURE_RESOURCE": ""}, wantExit: 1, wantOut: "AZURE_RESOURCE is not set (nor BEARER_TOKEN_AUDIENCE)"},
		{name: "BEARER_TOKEN_MIN_VALIDITY not a duration", env: map[string]string{"BEARER_TOKEN_MIN_VALIDITY": "300"}, file: token(nil),
			wantExit: 1, wantOut: `BEARER_TOKEN_MIN_VALIDITY "300": want a Go duration`},
		{name: "BEARER_TOKEN_MIN_VALIDITY negative", env: map[string]string{"BEARER_TOKEN_MIN_VALIDITY": "-1m"}, file: token(nil),
			wantExit: 1, wantOut: "BEARER_TOKEN_MIN_VALIDITY"},
		{name: "path with a newline", env: map[string]string{"BEARER_TOKEN_FILE": "/tmp/token\n"}, wantExit: 1, wantOut: "control characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "token")
			env := map[string]string{"BEARER_TOKEN_FILE": path, "AZURE_RESOURCE": entratest.PrometheusResource,
				// -check must not look at these.
				"ENTRA_SERVICE_PRINCIPAL": "/nonexistent/sp.json", "AZURE_AUTHORITY_HOST": "http://bad", "LOG_FORMAT": "xml"}
			for k, v := range tc.env {
				env[k] = v
			}
			if tc.file != nil {
				tc.file(t, path)
			}
			var read []string
			getenv := func(k string) string { read = append(read, k); return env[k] }
			var out bytes.Buffer
			err := run(t.Context(), []string{"azure-rest-api-token", "-check"}, getenv, nil, &out)
			t.Logf("output: %s", out.String())
			if got := exitStatus(err); got != tc.wantExit {
				t.Errorf("exit status %d, want %d (%v)", got, tc.wantExit, err)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output does not hold %q", tc.wantOut)
			}
			if n := strings.Count(out.String(), "\n"); n != 1 || !strings.HasPrefix(out.String(), "azure-rest-api-token -check: ") {
				t.Errorf("output is %d lines, want one starting %q", n, "azure-rest-api-token -check: ")
			}
			if m := jwtPattern.FindString(out.String()); m != "" {
				t.Errorf("output holds a token")
			}
			if _, ok := errors.AsType[*checkFailure](err); err != nil && !ok {
				t.Errorf("error %T is not a checkFailure: main would write a termination message", err)
			}
			allowed := []string{"BEARER_TOKEN_FILE", "AZURE_RESOURCE", "BEARER_TOKEN_AUDIENCE", "BEARER_TOKEN_MIN_VALIDITY", "BEARER_TOKEN_FORMAT", "BEARER_TOKEN_RESOURCES"}
			for _, k := range read {
				if !slices.Contains(allowed, k) {
					t.Errorf("-check read %s", k)
				}
			}
			if info, err := os.Lstat(path); tc.file == nil && err == nil {
				t.Errorf("-check created %s (%v)", path, info.Mode())
			}
		})
	}
}

// TestCheckDocumented: -check's variable and exit status are in the manual and README.md.
func TestCheckDocumented(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"BEARER_TOKEN_MIN_VALIDITY", "-check"} {
		if !strings.Contains(manual(), want) {
			t.Errorf("the manual does not document %s", want)
		}
		if !bytes.Contains(readme, []byte("`"+want)) {
			t.Errorf("README.md does not document `%s`", want)
		}
	}
	if !strings.Contains(manual(), "\n  3   -check") && !strings.Contains(manual(), "\t3   -check") {
		t.Errorf("the manual does not document exit status 3")
	}
	if !bytes.Contains(readme, []byte("| 3 | `-check`")) {
		t.Errorf("README.md does not document exit status 3")
	}
}

// TestReadmeSidecarExample: the README's Long-running pods example is deploy/sidecar-deployment.yaml,
// byte for byte, and its probes run -check.
func TestReadmeSidecarExample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile("deploy/sidecar-deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Long-running pods\n")
	_, block, ok2 := strings.Cut(section, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README.md has no YAML block under \"## Long-running pods\"")
	}
	if diff := cmp.Diff(string(file), block); diff != "" {
		t.Errorf("README.md's sidecar example differs from deploy/sidecar-deployment.yaml (-file +README):\n%s", diff)
	}
	for _, want := range []string{"restartPolicy: Always", "startupProbe:", "livenessProbe:", "command: [/ko-app/azure-rest-api-token, -check]",
		"medium: Memory", `value: "true"`, "readOnlyRootFilesystem: true", "drop: [ALL]", "type: RuntimeDefault", "image: docker.io/densify/azure-rest-api-token:"} {
		if !strings.Contains(string(file), want) {
			t.Errorf("deploy/sidecar-deployment.yaml does not hold %q", want)
		}
	}
}
