package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			getenv := func(string) string { t.Error("getenv called"); return "" }
			err := run(t.Context(), append([]string{"azure-rest-api-token"}, tc.args...), getenv, &out)
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
		if err := run(t.Context(), []string{"azure-rest-api-token"}, getenv, &out); err != nil {
			t.Fatalf("run: %v\n%s", err, out.String())
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range read {
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
}

// TestBinary builds the real program as releases do, with the version stamped by -ldflags -X, and
// checks -version; then sends it SIGTERM while Entra has not answered: it must stop within moments, say
// why, exit with status 10 and leave nothing behind.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "azure-rest-api-token")
	build := exec.Command("go", "build", "-trimpath", "-tags", "nethttpomithttp2",
		"-ldflags", "-s -w -X main.version=9.8.7 -X main.commit=0123abc", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
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
