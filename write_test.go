package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// TestCancel cancels the run, as SIGTERM does, while Entra has not answered yet and while the run waits
// out a Retry-After: the run stops at once, long before the answer or the wait, and leaves nothing
// behind.
func TestCancel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		entra entratest.Response
		after time.Duration // from the first request to the cancellation
	}{
		{"mid-request", entratestHang(), 0},
		{"during a Retry-After wait", entratest.Response{Status: 429, Header: map[string]string{"Retry-After": "60"}}, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.srv.Enqueue(tc.entra)
			ctx, cancel := context.WithCancelCause(t.Context())
			go func() {
				for len(f.srv.Requests()) == 0 {
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(tc.after)
				cancel(errors.New("signal: terminated"))
			}()
			start := time.Now()
			out, err := f.run(ctx)
			f.checkNoSecrets(out)
			if got := exitStatus(err); got != exitRequest {
				t.Errorf("exit status = %d, want %d (error: %v)", got, exitRequest, err)
			}
			if !strings.Contains(out, "signal: terminated") {
				t.Errorf("output does not give the cause:\n%s", out)
			}
			if elapsed := time.Since(start); elapsed > 30*time.Second {
				t.Errorf("run went on for %v after cancellation, as if it waited for Entra", elapsed)
			}
			if got := len(f.srv.Requests()); got != 1 {
				t.Errorf("%d requests, want 1", got)
			}
			if diff := cmp.Diff([]string(nil), f.dirEntries()); diff != "" {
				t.Errorf("token directory after cancellation (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRace runs two programs for one token file at once: exactly one writes it, whole, and the other
// fails with exit status 11 or 1, leaving no temporary file.
func TestRace(t *testing.T) {
	t.Parallel()
	for i := range 10 {
		f := newFixture(t)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j := range errs {
			wg.Go(func() { _, errs[j] = f.run(t.Context()) })
		}
		wg.Wait()
		var codes []int
		for _, err := range errs {
			codes = append(codes, exitStatus(err))
		}
		won := 0
		for _, c := range codes {
			switch c {
			case 0:
				won++
			case exitWrite, exitConfig: // lost at link(2), or saw the winner's file before starting
			default:
				t.Errorf("round %d: exit status %d", i, c)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: exit statuses %v, want exactly one 0 (errors %v)", i, codes, errs)
		}
		checkTokenFile(t, f, 0o644)
	}
}

// TestUmask shows the mode comes from BEARER_TOKEN_FILE_MODE whatever the umask. The umask is the
// process's, so this test must not run in parallel with others.
func TestUmask(t *testing.T) {
	f := newFixture(t)
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	out, err := f.run(t.Context())
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	checkTokenFile(t, f, 0o644)
}

// TestReadOnlyDirectory shows a read-only token directory (a volume mounted readOnly) fails the run
// with exit status 11 before any request. As root, which ignores permission bits, the directory is
// made read-only with a read-only bind mount in a mount namespace of this test's thread alone.
func TestReadOnlyDirectory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if os.Geteuid() == 0 {
		runtime.LockOSThread() // never unlocked: the thread, with its namespace, ends with the test
		if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
			t.Skipf("cannot make a mount namespace to make a directory read-only as root: %v", err)
		}
		if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount(f.tokenDir, f.tokenDir, "", syscall.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Unmount(f.tokenDir, 0) }) // before t.TempDir's removal
		if err := syscall.Mount("", f.tokenDir, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			t.Fatal(err)
		}
	} else if err := os.Chmod(f.tokenDir, 0o555); err != nil {
		t.Fatal(err)
	}
	out, err := f.run(t.Context())
	f.checkNoSecrets(out)
	if got := exitStatus(err); got != exitWrite {
		t.Errorf("exit status = %d, want %d (error: %v)", got, exitWrite, err)
	}
	if got := len(f.srv.Requests()); got != 0 {
		t.Errorf("%d requests, want 0", got)
	}
	if diff := cmp.Diff([]string(nil), f.dirEntries()); diff != "" {
		t.Errorf("token directory (-want +got):\n%s", diff)
	}
}

// TestPublishAfterCancel shows a token that arrives after the run was cancelled is not published.
func TestPublishAfterCancel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "token")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := writeTokenFile(ctx, target, 0o644, "x.y.z", false); err == nil {
		t.Error("publish after cancel succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("left %d files behind", len(entries))
	}
}
