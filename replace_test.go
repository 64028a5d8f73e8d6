package main

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRunReplace drives run, as TestRun does, through what BEARER_TOKEN_REFRESH and
// BEARER_TOKEN_FILE_REPLACE add before the first request, and what a one-shot run says of the file
// that is already there.
func TestRunReplace(t *testing.T) {
	t.Parallel()
	setEnv := func(kv ...string) func(f *fixture) {
		return func(f *fixture) {
			for i := 0; i < len(kv); i += 2 {
				f.env[kv[i]] = kv[i+1]
			}
		}
	}
	with := func(fs ...func(f *fixture)) func(f *fixture) {
		return func(f *fixture) {
			for _, fn := range fs {
				fn(f)
			}
		}
	}
	oldFile := func(f *fixture) { mustDo(f.t, os.WriteFile(f.tokenFile, []byte("old"), 0o600)) }
	dir := func(f *fixture) { mustDo(f.t, os.Mkdir(f.tokenFile, 0o755)) }
	fifo := func(f *fixture) { mustDo(f.t, syscall.Mkfifo(f.tokenFile, 0o600)) }
	link := func(f *fixture) { mustDo(f.t, os.Symlink(filepath.Join(f.dir, "nowhere"), f.tokenFile)) }
	refresh := setEnv("BEARER_TOKEN_REFRESH", "true")
	replace := setEnv("BEARER_TOKEN_FILE_REPLACE", "true")
	runTable(t, []runCase{
		// Configuration.
		{name: "BEARER_TOKEN_REFRESH not a boolean", wantExit: 1, setup: setEnv("BEARER_TOKEN_REFRESH", "yes"),
			wantOut: []string{`BEARER_TOKEN_REFRESH \"yes\": want \"true\" or \"false\"`}},
		{name: "BEARER_TOKEN_REFRESH in capitals", wantExit: 1, setup: setEnv("BEARER_TOKEN_REFRESH", "TRUE"),
			wantOut: []string{"BEARER_TOKEN_REFRESH"}},
		{name: "BEARER_TOKEN_FILE_REPLACE not a boolean", wantExit: 1, setup: setEnv("BEARER_TOKEN_FILE_REPLACE", "1"),
			wantOut: []string{`BEARER_TOKEN_FILE_REPLACE \"1\": want \"true\" or \"false\"`}},
		{name: "refresh with BEARER_TOKEN_FILE_REPLACE false", wantExit: 1, setup: with(refresh, setEnv("BEARER_TOKEN_FILE_REPLACE", "false")),
			wantOut: []string{"refresh mode replaces the file"}},

		// One-shot, no replace: the file there, and what to do.
		{name: "token file exists: what to do", wantExit: 1, setup: oldFile,
			wantOut: []string{"already exists", "the pod cannot start while this fails", "delete the pod",
				"BEARER_TOKEN_FILE_REPLACE=true", "BEARER_TOKEN_REFRESH=true"}},
		{name: "directory: names the file inside", wantExit: 1, setup: dir,
			wantOut: []string{"as a directory", "BEARER_TOKEN_FILE names the token file inside a directory", "token/token/token"}},
		{name: "directory with replace: names the file inside", wantExit: 1, setup: with(replace, dir),
			wantOut: []string{"as a directory", "names the token file inside"}},

		// BEARER_TOKEN_FILE_REPLACE in a one-shot run.
		{name: "replace: regular file replaced", wantRequests: 1, setup: with(replace, oldFile),
			wantOut: []string{"wrote access token"}},
		{name: "replace: nothing there", wantRequests: 1, setup: replace},
		{name: "replace: replaced file gets the mode", wantRequests: 1, wantMode: 0o640,
			setup: with(replace, oldFile, setEnv("BEARER_TOKEN_FILE_MODE", "0640"))},
		{name: "replace: FIFO is not replaced", wantExit: 1, setup: with(replace, fifo),
			wantOut: []string{"named pipe (FIFO)", "only a regular file is replaced"}},
		{name: "replace: symbolic link is not replaced", wantExit: 1, setup: with(replace, link),
			wantOut: []string{"symbolic link", "only a regular file is replaced"}},

		// Refresh mode: before the first token, as the one-shot.
		{name: "refresh: FIFO", wantExit: 1, setup: with(refresh, fifo), wantOut: []string{"named pipe (FIFO)"}},
		{name: "refresh: directory", wantExit: 1, setup: with(refresh, dir), wantOut: []string{"as a directory"}},
		{name: "refresh: symbolic link", wantExit: 1, setup: with(refresh, link), wantOut: []string{"symbolic link"}},
		{name: "refresh: first token refused, as the one-shot", wantExit: 10, wantRequests: 1,
			setup: with(refresh, func(f *fixture) {
				f.secret = "wrong-secret-value"
				f.writeServicePrincipal(map[string]any{"appId": "0c7d5e1a-1111-4222-8333-444455556666", "displayName": "d", "password": f.secret, "tenant": "contoso.onmicrosoft.com"})
			}),
			wantOut: []string{"AADSTS7000215", "exit_status=10"}},
		{name: "refresh: first token retried until BEARER_TOKEN_TIMEOUT, as the one-shot", wantExit: 10, wantRequests: -5,
			setup: with(refresh, setEnv("BEARER_TOKEN_TIMEOUT", "2s"), func(f *fixture) {
				for range 1000 {
					f.srv.Enqueue(errorResponse(503, "temporarily_unavailable", 0))
				}
			}),
			wantOut: []string{"giving up after", "too little time left"}},
		{name: "refresh: BEARER_TOKEN_TIMEOUT bounds the first token", wantExit: 10, wantRequests: 1,
			setup:   with(refresh, setEnv("BEARER_TOKEN_TIMEOUT", "3s"), func(f *fixture) { f.srv.Enqueue(entratestHang()) }),
			wantOut: []string{"BEARER_TOKEN_TIMEOUT (3s) ran out"}},
	})
}

// TestRefreshTakesOver starts refresh mode through run, on the real clock, with a file left at the
// path by an earlier sidecar: it replaces it with a new token and keeps running; cancelled, it returns
// nil and leaves the new token.
func TestRefreshTakesOver(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.env["BEARER_TOKEN_REFRESH"] = "true"
	mustDo(t, os.WriteFile(f.tokenFile, []byte("a token of the sidecar before the restart"), 0o644))
	ctx, cancel := context.WithCancel(t.Context())
	out := &logBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"azure-rest-api-token"}, func(k string) string { return f.env[k] }, slices.Sorted(maps.Keys(f.env)), out)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "keeping the access token fresh") {
		select {
		case err := <-done:
			t.Fatalf("run returned %v; output:\n%s", err, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no first token after 30 s; output:\n%s", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	checkTokenFile(t, f, 0o644)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run returned %v after cancellation, want nil", err)
	}
	t.Logf("output:\n%s", out)
	f.checkNoSecrets(out.String())
	checkTokenFile(t, f, 0o644)
	for _, want := range []string{"wrote access token", "next_renewal=", "stopping; the token file stays in place"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not hold %q", want)
		}
	}
	if diff := cmp.Diff(1, len(f.srv.Requests())); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}
