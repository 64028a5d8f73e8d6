package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

func TestFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args     []string
		wantExit int
		wantOut  string
	}{
		{[]string{"-version"}, 0, "azure-rest-api-token (devel)\n"},
		{[]string{"-help"}, 0, "Command azure-rest-api-token gets an OAuth 2.0 access token"},
		{[]string{"-h"}, 0, "Exit statuses:"},
		{[]string{"-nope"}, 1, synopsis},
		{[]string{"extra"}, 1, synopsis},
		{[]string{"extra"}, 1, `azure-rest-api-token: command line: unexpected argument "extra": configuration comes from the environment (see -help)` + "\n" + synopsis},
		{[]string{"-nope"}, 1, "flag provided but not defined: -nope"},
		{[]string{"-check", "-version"}, 1, "azure-rest-api-token: command line: -check and -version are two modes: give one\n" + synopsis},
		{[]string{"-version", "-check"}, 1, "-check and -version are two modes"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			getenv := func(string) string { t.Error("getenv called"); return "" }
			err := run(t.Context(), append([]string{"azure-rest-api-token"}, tc.args...), getenv, nil, &out)
			if got := exitStatus(err); got != tc.wantExit {
				t.Errorf("exit status %d, want %d (%v)", got, tc.wantExit, err)
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output %q does not hold %q", out.String(), tc.wantOut)
			}
		})
	}
}

// TestManualDocumentsEveryVariable runs the program with each kind of credential and records every
// environment variable it reads: each must be in the manual (the package comment, which -help prints)
// and in README.md.
func TestManualDocumentsEveryVariable(t *testing.T) {
	t.Parallel()
	var read []string
	for _, setup := range []func(*fixture){
		func(*fixture) {},
		func(f *fixture) { f.useCertificate(pemOptions{viaEnv: true}) },
		func(f *fixture) { f.useWorkloadIdentity(nil) },
	} {
		f := newFixture(t)
		setup(f)
		getenv := func(k string) string {
			if !slices.Contains(read, k) {
				read = append(read, k)
			}
			return f.env[k]
		}
		var out bytes.Buffer
		if err := run(t.Context(), []string{"azure-rest-api-token"}, getenv, nil, &out); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range read {
		// The list unknown variables are checked against must hold every variable of ours read.
		if slices.ContainsFunc(checkedPrefixes, func(p string) bool { return strings.HasPrefix(k, p) }) && !slices.Contains(knownVariables, k) {
			t.Errorf("%s is read but not in knownVariables: setting it would draw an \"unknown variable\" warning", k)
		}
		if !strings.Contains(manual(), k) {
			t.Errorf("the manual does not document %s", k)
		}
		if !bytes.Contains(readme, []byte("`"+k+"`")) {
			t.Errorf("README.md does not document `%s`", k)
		}
	}
	for _, status := range []int{exitConfig, exitCredential, exitRequest, exitWrite, exitTokenInvalid} {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^\s*%d\s`, status)).MatchString(manual()) {
			t.Errorf("the manual does not document exit status %d", status)
		}
		if !bytes.Contains(readme, fmt.Appendf(nil, "| %d ", status)) {
			t.Errorf("README.md does not document exit status %d", status)
		}
	}
}

func TestExitStatus(t *testing.T) {
	t.Parallel()
	wrapped := fmt.Errorf("outer: %w", withExit(exitWrite, errors.New("inner")))
	got := []int{exitStatus(nil), exitStatus(errors.New("plain")), exitStatus(wrapped)}
	if diff := cmp.Diff([]int{0, 1, 11}, got); diff != "" {
		t.Errorf("exit statuses (-want +got):\n%s", diff)
	}
	if withExit(exitWrite, nil) != nil {
		t.Error("withExit(code, nil) != nil")
	}
}

func TestTerminationMessage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "termination-log")
	writeTerminationMessage(path, errors.New("not there"))
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("created %q, which did not exist", path)
	}
	if err := os.WriteFile(path, []byte("old message, longer than the new one"), 0o666); err != nil {
		t.Fatal(err)
	}
	writeTerminationMessage(path, errors.New(`token file "/t" already exists`))
	got, _ := os.ReadFile(path)
	if diff := cmp.Diff(`azure-rest-api-token: token file "/t" already exists`, string(got)); diff != "" {
		t.Errorf("termination message (-want +got):\n%s", diff)
	}
	writeTerminationMessage(path, errors.New(strings.Repeat("x", 10000)))
	if got, _ := os.ReadFile(path); len(got) != 4096 {
		t.Errorf("termination message is %d bytes, want Kubernetes' limit 4096", len(got))
	}
	// Whatever an error holds (a certificate's names, a proxy's reason phrase), the message is one line
	// that no terminal interprets.
	writeTerminationMessage(path, errors.New("x509: certificate is valid for a\nazure-rest-api-token: fine\r\n\x1b[8mhidden, \u202eevil\u2028, \xff\x00\x7f\u0085 ok: \\n ✓"))
	got, _ = os.ReadFile(path)
	want := `azure-rest-api-token: x509: certificate is valid for a\nazure-rest-api-token: fine\r\n\x1b[8mhidden, \u202eevil\u2028, \xff\x00\x7f\u0085 ok: \n ✓`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("termination message (-want +got):\n%s", diff)
	}
	writeTerminationMessage(path, errors.New(strings.Repeat("é", 3000)))
	if got, _ := os.ReadFile(path); len(got) > 4096 || !utf8.Valid(got) {
		t.Errorf("termination message is %d bytes, valid UTF-8 %v: want at most 4096, valid", len(got), utf8.Valid(got))
	}
}

// TestBinary builds the real program as releases do, with the version stamped by -ldflags -X, and
// checks -version; then sends it SIGTERM while Entra has not answered: it must stop within moments, say
// why, exit with status 10 and leave nothing behind.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	t.Parallel()
	bin := buildBinary(t)
	versionOut, err := exec.Command(bin, "-version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("azure-rest-api-token 9.8.7 (commit 0123abc)\n", string(versionOut)); diff != "" {
		t.Errorf("-version (-want +got):\n%s", diff)
	}

	f := newFixture(t)
	f.srv.Enqueue(entratestHang())
	cmd := exec.Command(bin)
	for k, v := range f.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+os.Getenv("SSL_CERT_FILE"))
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for len(f.srv.Requests()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = cmd.Wait()
	t.Logf("stopped %v after SIGTERM; output:\n%s", time.Since(start), out.String())
	f.checkNoSecrets(out.String())
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != exitRequest {
		t.Errorf("exit: %v, want status %d", err, exitRequest)
	}
	if !strings.Contains(out.String(), "terminated") {
		t.Errorf("output does not say the run was terminated")
	}
	if diff := cmp.Diff([]string(nil), f.dirEntries()); diff != "" {
		t.Errorf("token directory after SIGTERM (-want +got):\n%s", diff)
	}
}

// built is the program, built once for every test that runs it (see [buildBinary]).
var built struct {
	sync.Once
	path string
	err  error
}

// buildBinary builds the real program as releases do, with the version stamped by -ldflags -X, once
// per test process, and returns its path. Tests that call it skip with -short.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the program")
	}
	built.Do(func() {
		built.path = filepath.Join(testDir, "azure-rest-api-token")
		build := exec.Command("go", "build", "-trimpath", "-tags", "nethttpomithttp2",
			"-ldflags", "-s -w -X main.version=9.8.7 -X main.commit=0123abc", "-o", built.path, ".")
		if out, err := build.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// binaryRun is what one run of the built program left: its standard output and error, its exit
// status, and the termination message it wrote.
type binaryRun struct {
	stdout, stderr string
	exit           int
	termination    string
}

// runBinaryInPod runs the built program with env (and this process's SSL_CERT_FILE) as Kubernetes
// does in one respect: /dev/termination-log exists and is writable. It is a file in a directory that a
// mount namespace of the program's own binds over /dev, so that the host's /dev is not touched. It
// skips where no mount namespace can be made.
func runBinaryInPod(t *testing.T, env map[string]string) binaryRun {
	t.Helper()
	bin := buildBinary(t)
	if os.Geteuid() != 0 {
		t.Skip("binding a directory over /dev needs root")
	}
	dev := t.TempDir()
	mustDo(t, os.WriteFile(filepath.Join(dev, "termination-log"), nil, 0o666))
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", `mount --bind "$0" /dev && exec "$1"`, dev, bin)
	cmd.Env = []string{"SSL_CERT_FILE=" + os.Getenv("SSL_CERT_FILE")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := binaryRun{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		r.exit = ee.ExitCode()
	} else if err != nil {
		t.Skipf("cannot run the program in a mount namespace: %v", err)
	}
	if strings.Contains(r.stderr, "unshare:") || strings.Contains(r.stderr, "mount:") {
		t.Skipf("cannot run the program in a mount namespace:\n%s", r.stderr)
	}
	term, err := os.ReadFile(filepath.Join(dev, "termination-log"))
	mustDo(t, err)
	r.termination = string(term)
	t.Logf("exit status %d\nstdout:\n%s\nstderr:\n%s\ntermination message: %q", r.exit, r.stdout, r.stderr, r.termination)
	return r
}

// TestTerminationMessageInPod runs the built program where a hostile server or proxy puts newlines
// and terminal escapes into the error: the termination message that "kubectl describe pod" shows is
// one line of printable text, which still says what happened.
func TestTerminationMessageInPod(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(f *fixture)
		want  string // in the termination message
	}{
		{"certificate with hostile names", func(f *fixture) { f.env["AZURE_AUTHORITY_HOST"] = newHostileServer(t, hostileNames) },
			`not for host "localhost" but for "login.microsoftonline.com\nazure-rest-api-token: all is well`},
		{"proxy refusing CONNECT with a hostile reason", func(f *fixture) {
			f.secret = "proxy-pa55word" // logged as the proxy in use, redacted
			f.env["HTTPS_PROXY"] = "http://proxy-user:" + f.secret + "@" + newRefusingProxy(t, "403 Forbidden\x1b[8m by policy\x1b[0m\u202e")
			f.env["AZURE_AUTHORITY_HOST"] = "https://login.entra.test/" // not loopback, which Go never proxies
			f.env["BEARER_TOKEN_TIMEOUT"] = "1s"                        // the refusal is retried
		}, `Forbidden\x1b[8m by policy\x1b[0m\u202e`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			tc.setup(f)
			r := runBinaryInPod(t, f.env)
			f.checkNoSecrets(r.stdout + r.termination)
			if r.exit != exitRequest {
				t.Errorf("exit status %d, want %d", r.exit, exitRequest)
			}
			if i := strings.IndexFunc(r.termination, func(c rune) bool { return c < ' ' || c == 0x7f || c == '\u202e' }); i >= 0 {
				t.Errorf("termination message holds control character %q at %d: %q", r.termination[i], i, r.termination)
			}
			if !strings.Contains(r.termination, tc.want) {
				t.Errorf("termination message does not hold %q", tc.want)
			}
			if proxy := f.env["HTTPS_PROXY"]; proxy != "" && !strings.Contains(r.stdout, "proxy=http://proxy-user:xxxxx@127.0.0.1:") {
				t.Errorf("the start-up line does not name the proxy in use, redacted")
			}
			if diff := cmp.Diff([]string(nil), f.dirEntries()); diff != "" {
				t.Errorf("token directory (-want +got):\n%s", diff)
			}
		})
	}
}

// newRefusingProxy starts an HTTP proxy on the loopback address that answers every request, CONNECT
// included, with the status line status, and returns its address.
func newRefusingProxy(t *testing.T, status string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	mustDo(t, err)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Length: 0\r\n\r\n", status)
			}()
		}
	}()
	return l.Addr().String()
}

// TestNothingOnStandardError runs the built program against a server that sends a token past the
// response's Content-Length: net/http reports such bytes on an idle connection with the standard
// library's logger, on standard error, quoting up to 4 KiB of them. No connection is ever idle or
// reused, and nothing reaches standard error.
func TestNothingOnStandardError(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	f := newFixture(t)
	ok := okBody(tokenFor(t, nil), "Bearer")
	ok.AfterBody = "HTTP/1.1 200 OK\r\n\r\n" + tokenFor(t, nil)
	f.srv.Enqueue(ok)
	cmd := exec.Command(bin)
	cmd.Env = []string{"SSL_CERT_FILE=" + os.Getenv("SSL_CERT_FILE")}
	for k, v := range f.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\n%s", err, stdout.String())
	}
	f.checkNoSecrets(stdout.String())
	if diff := cmp.Diff("", stderr.String()); diff != "" {
		t.Errorf("standard error (-want +got):\n%s", diff)
	}
}

// TestBinaryBlockedCredential sends the built program SIGTERM while it is stuck opening the service
// principal file (a file lease stands in for a hung FUSE or network file, see [holdLease]): it exits
// at once with status 1, says why, and leaves nothing behind.
func TestBinaryBlockedCredential(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	f := newFixture(t)
	waitBlocked := holdLease(t, f.spFile)
	cmd := exec.Command(bin)
	cmd.Env = []string{"SSL_CERT_FILE=" + os.Getenv("SSL_CERT_FILE")}
	for k, v := range f.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	mustDo(t, cmd.Start())
	waitBlocked()
	mustDo(t, cmd.Process.Signal(syscall.SIGTERM))
	start := time.Now()
	err := cmd.Wait()
	t.Logf("stopped %v after SIGTERM; output:\n%s", time.Since(start), out.String())
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("stopped %v after SIGTERM, want at once", elapsed)
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != exitConfig {
		t.Errorf("exit: %v, want status %d", err, exitConfig)
	}
	if !strings.Contains(out.String(), "stopped: terminated signal received; a file system call it waited on did not return") {
		t.Errorf("output does not say why")
	}
	if got := len(f.srv.Requests()); got != 0 {
		t.Errorf("%d requests, want 0", got)
	}
	if diff := cmp.Diff([]string(nil), f.dirEntries()); diff != "" {
		t.Errorf("token directory after SIGTERM (-want +got):\n%s", diff)
	}
}

// TestBinaryThroughProxy runs the built program with HTTPS_PROXY naming a loopback CONNECT proxy that
// requires a password: the token request goes through it (to a host name only the proxy can reach),
// and the start-up line names the proxy with the password redacted.
func TestBinaryThroughProxy(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	f := newFixture(t)
	f.secret = "pr0xy-pa55" // must not be printed
	var mu sync.Mutex
	var connects []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		connects = append(connects, r.Method+" "+r.Host+" "+r.Header.Get("Proxy-Authorization"))
		mu.Unlock()
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		upstream, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(f.srv.URL, "https://"), "/"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer upstream.Close()
		w.WriteHeader(http.StatusOK)
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		go func() { _, _ = io.Copy(upstream, rw) }()
		_, _ = io.Copy(conn, upstream)
	}))
	t.Cleanup(proxy.Close)
	_, port, _ := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(f.srv.URL, "https://"), "/"))
	f.env["AZURE_AUTHORITY_HOST"] = "https://" + entratest.ProxiedHost + ":" + port + "/"
	f.env["HTTPS_PROXY"] = "http://proxy-user:" + f.secret + "@" + strings.TrimPrefix(proxy.URL, "http://")
	cmd := exec.Command(bin)
	cmd.Env = []string{"SSL_CERT_FILE=" + os.Getenv("SSL_CERT_FILE")}
	for k, v := range f.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	f.checkNoSecrets(out.String())
	wantProxy := "proxy=http://proxy-user:xxxxx@" + strings.TrimPrefix(proxy.URL, "http://")
	if !strings.Contains(out.String(), wantProxy) {
		t.Errorf("output does not hold %q", wantProxy)
	}
	mu.Lock()
	defer mu.Unlock()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("proxy-user:"+f.secret))
	if diff := cmp.Diff([]string{"CONNECT " + entratest.ProxiedHost + ":" + port + " " + auth}, connects); diff != "" {
		t.Errorf("requests to the proxy (-want +got):\n%s", diff)
	}
	checkTokenFile(t, f, 0o644)
}

// TestUnknownVariables: a variable of ours that the program does not read is named with the closest
// one it does read (issue 14, item 10); others, and the known ones, draw nothing.
func TestUnknownVariables(t *testing.T) {
	t.Parallel()
	got := unknownVariables([]string{"PATH", "HOME", "BEARER_TOKEN_REFERSH", "BEARER_TOKEN_FILE", "ENTRA_SERVICE_PRINCIPLE",
		"AZURE_CLIENT_SECRET", "BEARER_TOKEN_FILE_REPLCE", "ENTRA_SERVICE_PRINCIPAL", "BEARER_TOKEN_MIN_VALIDTY", "https_proxy"})
	want := []string{
		"BEARER_TOKEN_REFERSH is set but is not a variable this program reads, and is ignored: did you mean BEARER_TOKEN_REFRESH?",
		"ENTRA_SERVICE_PRINCIPLE is set but is not a variable this program reads, and is ignored: did you mean ENTRA_SERVICE_PRINCIPAL?",
		"BEARER_TOKEN_FILE_REPLCE is set but is not a variable this program reads, and is ignored: did you mean BEARER_TOKEN_FILE_REPLACE?",
		"BEARER_TOKEN_MIN_VALIDTY is set but is not a variable this program reads, and is ignored: did you mean BEARER_TOKEN_MIN_VALIDITY?",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unknownVariables (-want +got):\n%s", diff)
	}
}
