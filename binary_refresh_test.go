package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	programOnce sync.Once
	programPath string
	programErr  error
)

// buildProgram builds the program once for the tests that run it, with the release build flags.
func buildProgram(t testing.TB) string {
	t.Helper()
	programOnce.Do(func() {
		dir, err := os.MkdirTemp("", "azure-rest-api-token-bin-")
		if err != nil {
			programErr = err
			return
		}
		programPath = filepath.Join(dir, "azure-rest-api-token")
		out, err := exec.Command("go", "build", "-trimpath", "-tags", "nethttpomithttp2", "-ldflags", "-s -w", "-o", programPath, ".").CombinedOutput()
		if err != nil {
			programErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if programErr != nil {
		t.Fatal(programErr)
	}
	return programPath
}

// TestBinaryRefresh runs the built program in refresh mode as the kubelet runs a native sidecar, on
// the real clock: once the first token is there, -check (the startup and liveness probe) passes, and
// SIGTERM ends the program with status 0 within moments, the token file intact. -check before the
// token exists fails with status 3 and one line.
func TestBinaryRefresh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	t.Parallel()
	bin := buildProgram(t)
	f := newFixture(t)
	env := []string{"SSL_CERT_FILE=" + os.Getenv("SSL_CERT_FILE"), "BEARER_TOKEN_REFRESH=true"}
	for k, v := range f.env {
		env = append(env, k+"="+v)
	}
	check := func() (string, int) {
		cmd := exec.Command(bin, "-check")
		cmd.Env = env
		out, err := cmd.Output()
		code := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := check(); code != exitCheckFailed || !strings.Contains(out, "does not exist") {
		t.Errorf("-check before the sidecar ran: status %d, output %q; want %d, \"does not exist\"", code, out, exitCheckFailed)
	}

	cmd := exec.Command(bin)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout = &logWriter{b: &out}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, code := check(); code == 0 {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("-check never passed; output:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	first := f.readToken()
	probe, _ := check()
	t.Logf("-check: %s", probe)
	time.Sleep(100 * time.Millisecond) // now waiting for the renewal, half an hour away
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := cmd.Wait()
	t.Logf("exited %v after SIGTERM; output:\n%s", time.Since(start), out.String())
	f.checkNoSecrets(out.String())
	if err != nil {
		t.Errorf("exit: %v, want status 0", err)
	}
	if f.readToken() != first {
		t.Error("the token file changed")
	}
	if diff := cmp.Diff([]string{"token"}, f.dirEntries()); diff != "" {
		t.Errorf("token directory after SIGTERM (-want +got):\n%s", diff)
	}
	if _, code := check(); code != 0 {
		t.Errorf("-check after SIGTERM: status %d, want 0: the token stays for the main container", code)
	}
}

// logWriter is a writer safe to read from the test while a process writes to it.
type logWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestBinarySIGTERMBurst sends a burst of SIGTERMs to the built program in refresh mode while it waits
// for its renewal, 20 runs over: every run exits with status 0. The signal handler stays until the
// process exits, so a signal that comes as it exits changes nothing (issue 16: 2 runs in 20 ended
// with 143).
func TestBinarySIGTERMBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the program")
	}
	t.Parallel()
	bin := buildProgram(t)
	for i := range 20 {
		f := newFixture(t)
		cmd := exec.Command(bin)
		cmd.Env = []string{"SSL_CERT_FILE=" + os.Getenv("SSL_CERT_FILE"), "BEARER_TOKEN_REFRESH=true"}
		for k, v := range f.env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var out bytes.Buffer
		lw := &logWriter{b: &out}
		cmd.Stdout = lw
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(lw.String(), "keeping the access token fresh") {
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Fatalf("run %d: no first token after 30 s; output:\n%s", i, lw.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		exited := make(chan struct{})
		go func() { // SIGTERM after SIGTERM, until the process is gone
			for {
				select {
				case <-exited:
					return
				default:
				}
				if cmd.Process.Signal(syscall.SIGTERM) != nil {
					return
				}
				time.Sleep(20 * time.Microsecond)
			}
		}()
		err := cmd.Wait()
		close(exited)
		if err != nil {
			t.Errorf("run %d: %v after a burst of SIGTERMs, want status 0; output:\n%s", i, err, lw.String())
		}
	}
}

func (w *logWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
