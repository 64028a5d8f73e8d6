package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// fakeClock is a simulated clock, shared by the renewal loop and the Entra stand-in: time stands
// still but while the loop waits, and a wait of any length ends after pace of real time, moving the
// clock to its end. So an hour-long token is renewed in milliseconds, with the real policy, and a slow
// request (the race detector, a busy machine) costs no simulated time. Pause holds every wait until
// Resume.
type fakeClock struct {
	pace      time.Duration
	onWait    func(n int)   // called as the loop starts its n-th wait
	overshoot time.Duration // waits end this much late, as in a process stopped for a while

	mu    sync.Mutex
	now   time.Time
	gate  chan struct{} // non-nil while paused; closed by Resume
	waits int
}

func newFakeClock() *fakeClock { return &fakeClock{pace: time.Millisecond, now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	end := c.now.Add(d + c.overshoot)
	c.waits++
	n := c.waits
	c.mu.Unlock()
	if c.onWait != nil {
		c.onWait(n)
	}
	ch := make(chan time.Time, 1)
	stop := make(chan struct{})
	go func() {
		select {
		case <-time.After(c.pace):
		case <-stop:
			return
		}
		c.mu.Lock()
		gate := c.gate
		c.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-stop:
				return
			}
		}
		c.mu.Lock()
		if c.now.Before(end) {
			c.now = end
		}
		now := c.now
		c.mu.Unlock()
		ch <- now
	}()
	var once sync.Once
	return ch, func() bool { once.Do(func() { close(stop) }); return true }
}

// Pause holds every wait, the current one included, until Resume.
func (c *fakeClock) Pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gate == nil {
		c.gate = make(chan struct{})
	}
}

func (c *fakeClock) Resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gate != nil {
		close(c.gate)
		c.gate = nil
	}
}

// logBuffer is the loop's log, safe to read while the loop writes, counting renewals and failures.
type logBuffer struct {
	mu              sync.Mutex
	b               strings.Builder
	discard         bool // count, do not keep
	renewed, failed int
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := string(p)
	if strings.Contains(s, `msg="renewed access token"`) {
		l.renewed++
	}
	if strings.Contains(s, `msg="renewing access token failed`) {
		l.failed++
	}
	if !l.discard {
		l.b.WriteString(s)
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) counts() (renewed, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.renewed, l.failed
}

// loop is refresh mode running in the background of a test, on a fake clock.
type loop struct {
	t      *testing.T
	f      *fixture
	clk    *fakeClock
	log    *logBuffer
	cancel context.CancelCauseFunc
	done   chan struct{}
	err    error // once done is closed
}

// startLoop runs refresh mode ([runJob], [keepFresh]) with f's environment and BEARER_TOKEN_REFRESH=true, on
// clk, which the stand-in shares. The test's end stops it.
func startLoop(t *testing.T, f *fixture, clk *fakeClock, log *logBuffer) *loop {
	t.Helper()
	f.env["BEARER_TOKEN_REFRESH"] = "true"
	f.srv.Now = clk.Now
	getenv := func(k string) string { return f.env[k] }
	cfg, err := loadConfig(getenv)
	if err != nil {
		t.Fatal(err)
	}
	src, err := loadSource(getenv, cfg.authority, cfg.resource)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	l := &loop{t: t, f: f, clk: clk, log: log, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.err = runJob(ctx, cfg, src, slog.New(slog.NewTextHandler(log, nil)), clk)
	}()
	t.Cleanup(func() {
		cancel(errors.New("test over"))
		clk.Resume()
		<-l.done
		f.checkNoSecrets(log.String())
	})
	return l
}

// waitFor polls cond until it holds, failing the test after 30 s of real time.
func (l *loop) waitFor(what string, cond func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		select {
		case <-l.done:
			if !cond() {
				l.t.Fatalf("refresh mode ended (%v) before %s; log:\n%s", l.err, what, l.log.String())
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("no %s after 30 s; log:\n%s", what, l.log.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// started waits for the first token.
func (l *loop) started() {
	l.t.Helper()
	l.waitFor("first token", func() bool { return strings.Contains(l.log.String(), "keeping the access token fresh") })
}

func (l *loop) renewals(n int) {
	l.t.Helper()
	l.waitFor("renewal", func() bool { r, _ := l.log.counts(); return r >= n })
}

// stop cancels the loop as SIGTERM does and returns its error and how long it took to return.
func (l *loop) stop() (time.Duration, error) {
	start := time.Now()
	l.cancel(errors.New("signal: terminated"))
	select {
	case <-l.done:
	case <-time.After(30 * time.Second):
		l.t.Fatalf("refresh mode still running 30 s after cancellation; log:\n%s", l.log.String())
	}
	return time.Since(start), l.err
}

// wait waits for the loop to end on its own and returns its error.
func (l *loop) wait() error {
	l.t.Helper()
	select {
	case <-l.done:
	case <-time.After(60 * time.Second):
		l.t.Fatalf("refresh mode still running after 60 s; log:\n%s", l.log.String())
	}
	return l.err
}

// readToken returns the token file's content.
func (f *fixture) readToken() string {
	f.t.Helper()
	b, err := os.ReadFile(f.tokenFile)
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// badToken says what is wrong with a read of the token file at now, or "" if it is a whole, valid
// token for the resource: an RS256 JWT whose signature has the full 256 bytes of the stand-in's key.
func badToken(data []byte, readErr error, now time.Time) string {
	switch {
	case readErr != nil:
		return "unreadable: " + readErr.Error()
	case len(data) == 0:
		return "empty"
	}
	auds, exp, err := parseTokenClaims(string(data))
	switch {
	case err != nil:
		return "not a JWT: " + err.Error()
	case len(data)-strings.LastIndexByte(string(data), '.')-1 != 342:
		return "partial: signature cut short"
	case !slices.Contains(auds, entratest.PrometheusResource):
		return "wrong audience"
	case !exp.After(now):
		return "expired at " + exp.String() + ", read at " + now.String()
	}
	return ""
}

// TestRefreshReader reads the token file in a tight loop across 60 renewals of hour-long tokens: no
// read may find it missing, empty, partial, not a JWT or expired. The renewals must come as the policy
// says: about two per lifetime, each at 25% to 75% of its token's lifetime, spread at random.
func TestRefreshReader(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.srv.TokenLifetime = time.Hour
	clk := newFakeClock()
	l := startLoop(t, f, clk, &logBuffer{})
	l.started()

	const renewals = 60
	type result struct {
		reads   int
		bad     int
		reasons []string
	}
	stopReader := make(chan struct{})
	results := make(chan result)
	go func() {
		var r result
		for {
			select {
			case <-stopReader:
				results <- r
				return
			default:
			}
			now := clk.Now() // before the read: the token must be valid when read, at least
			data, err := os.ReadFile(f.tokenFile)
			r.reads++
			if reason := badToken(data, err, now); reason != "" {
				r.bad++
				if len(r.reasons) < 5 {
					r.reasons = append(r.reasons, reason)
				}
			}
		}
	}()
	l.renewals(renewals)
	close(stopReader)
	r := <-results
	if _, err := l.stop(); err != nil {
		t.Errorf("refresh mode stopped with %v, want nil", err)
	}
	got, failed := l.log.counts()
	t.Logf("reader: %d reads across %d renewals, %d bad reads", r.reads, got, r.bad)
	if r.bad != 0 || failed != 0 {
		t.Errorf("%d bad reads (%q), %d failed renewals; want none", r.bad, r.reasons, failed)
	}
	if r.reads < renewals {
		t.Errorf("only %d reads across %d renewals: the reader did not keep up", r.reads, renewals)
	}
	if diff := cmp.Diff([]string{"token"}, f.dirEntries()); diff != "" {
		t.Errorf("token directory (-want +got):\n%s", diff)
	}

	// The schedule, by the stand-in's clock: request i+1 renews the token request i received.
	reqs := f.srv.Requests()
	var gaps []time.Duration
	for i := 1; i < len(reqs); i++ {
		gaps = append(gaps, reqs[i].Time.Sub(reqs[i-1].Time))
	}
	lo, hi := slices.Min(gaps), slices.Max(gaps)
	total := reqs[len(reqs)-1].Time.Sub(reqs[0].Time)
	perLifetime := float64(len(gaps)) * float64(time.Hour) / float64(total)
	t.Logf("renewals: %d, %.2f per token lifetime; interval %v to %v", len(gaps), perLifetime, lo, hi)
	// exp has whole seconds: a token lives 59m59s to 60m by the clock that received it.
	if lo < 15*time.Minute-time.Second || hi > 45*time.Minute {
		t.Errorf("renewal intervals %v to %v, want within 15 to 45 minutes of an hour-long token", lo, hi)
	}
	if hi-lo < 15*time.Minute {
		t.Errorf("renewal intervals %v to %v: the spread (30 minutes) does not spread them", lo, hi)
	}
	if perLifetime < 1.8 || perLifetime > 2.2 {
		t.Errorf("%.2f renewals per lifetime, want about 2", perLifetime)
	}
}

// TestRefreshFailures makes renewals fail for a while: the file keeps the current token during the
// failures, each failure is one log line with the reason and the token's expiry, the retries wait at
// least the backoff (or Retry-After), and the next success recovers.
func TestRefreshFailures(t *testing.T) {
	t.Parallel()
	s := time.Second
	for _, tc := range []struct {
		name     string
		failures []entratest.Response
		minGaps  []time.Duration // between the failed attempts and the next
		wantOut  []string
	}{
		{"503 three times",
			[]entratest.Response{errorResponse(503, "temporarily_unavailable", 0), errorResponse(503, "temporarily_unavailable", 0), errorResponse(503, "temporarily_unavailable", 0)},
			[]time.Duration{10 * s, 10 * s, 10 * s}, []string{"503 Service Unavailable", "failures=3"}},
		{"429 with Retry-After",
			[]entratest.Response{{Status: 429, Header: map[string]string{"Retry-After": "600"}, Body: "slow down"}},
			[]time.Duration{600 * s}, []string{"429 Too Many Requests"}},
		{"401: a secret being rotated",
			[]entratest.Response{errorResponse(401, "invalid_client", 7000215), errorResponse(401, "invalid_client", 7000215)},
			[]time.Duration{10 * s, 10 * s}, []string{"AADSTS7000215", "401 Unauthorized"}},
		{"400",
			[]entratest.Response{errorResponse(400, "invalid_request", 90002)},
			[]time.Duration{10 * s}, []string{"AADSTS90002"}},
		{"a token for another audience",
			[]entratest.Response{okBody(tokenForLater(map[string]any{"aud": "https://other"}), "Bearer")},
			[]time.Duration{10 * s}, []string{"checking the access token", `\"https://other\"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			clk := newFakeClock()
			clk.Pause()
			l := startLoop(t, f, clk, &logBuffer{})
			l.started()
			first := f.readToken()
			var mu sync.Mutex
			var changed []int
			for i, r := range tc.failures {
				r.Then = func() {
					if b, err := os.ReadFile(f.tokenFile); err != nil || string(b) != first {
						mu.Lock()
						changed = append(changed, i)
						mu.Unlock()
					}
				}
				f.srv.Enqueue(r)
			}
			clk.Resume()
			l.renewals(1)
			if _, err := l.stop(); err != nil {
				t.Errorf("refresh mode stopped with %v, want nil", err)
			}
			out := l.log.String()
			t.Logf("log:\n%s", out)
			mu.Lock()
			if len(changed) != 0 {
				t.Errorf("the token file changed before failed attempts %v", changed)
			}
			mu.Unlock()
			if _, failed := l.log.counts(); failed != len(tc.failures) {
				t.Errorf("%d failure lines, want %d", failed, len(tc.failures))
			}
			for line := range strings.Lines(out) {
				if strings.Contains(line, "renewing access token failed") && !strings.Contains(line, "token_expires=") {
					t.Errorf("failure line does not say when the token expires: %s", line)
				}
			}
			for _, want := range tc.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("log does not hold %q", want)
				}
			}
			if f.readToken() == first {
				t.Error("the token file still holds the first token after the recovery")
			}
			reqs := f.srv.Requests() // the clock ran on: more renewals may have come before the stop
			if len(reqs) < len(tc.failures)+2 {
				t.Fatalf("%d requests, want at least %d", len(reqs), len(tc.failures)+2)
			}
			for i, min := range tc.minGaps {
				if gap := reqs[i+2].Time.Sub(reqs[i+1].Time); gap < min {
					t.Errorf("attempt %d came %v after the failure before it, want at least %v", i+2, gap, min)
				}
			}
		})
	}
}

// TestRefreshExpires lets the token expire without a renewal: refresh mode exits with status 10 at
// expiry, not before, saying why.
func TestRefreshExpires(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		lifetime  time.Duration
		refuse    bool          // the stand-in stops accepting the secret after the first token
		overshoot time.Duration // of the clock's waits
		wantOut   []string
		breakSP   func(f *fixture) // makes renewals fail before a request, with an error of exit status 1 or 2
	}{
		{"renewals refused until expiry", time.Hour, true, 0,
			[]string{"expired at", "could not be renewed", "AADSTS7000215"}, nil},
		{"service principal file gone until expiry", time.Hour, false, 0,
			[]string{"expired at", "could not be renewed", "no such file"},
			func(f *fixture) { mustDo(f.t, os.Remove(f.spFile)) }},
		{"service principal file invalid until expiry", time.Hour, false, 0,
			[]string{"expired at", "could not be renewed", "missing or empty attribute"},
			func(f *fixture) { f.writeServicePrincipalBytes([]byte(`{"appId": "half-written"}`)) }},
		{"token shorter than the floor between renewals", 10 * time.Second, false, 0,
			[]string{"expired at", "before its renewal was due", "check the node's clock"}, nil},
		{"the process did not run until after expiry", time.Hour, false, 45 * time.Minute,
			[]string{"expired at", "did not run in time"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.srv.TokenLifetime = tc.lifetime
			clk := newFakeClock()
			clk.overshoot = tc.overshoot
			clk.Pause()
			l := startLoop(t, f, clk, &logBuffer{})
			l.started()
			_, exp, err := parseTokenClaims(f.readToken())
			if err != nil {
				t.Fatal(err)
			}
			if tc.breakSP != nil {
				tc.breakSP(f)
			}
			if tc.refuse {
				f.srv.Change(func() {
					app := f.srv.Apps[entratest.DefaultClientID]
					app.Secret = "a-secret-rotated-in-entra-only"
					f.srv.Apps[entratest.DefaultClientID] = app
				})
			}
			clk.Resume()
			err = l.wait()
			t.Logf("error: %v; log:\n%s", err, l.log.String())
			if got := exitStatus(err); got != exitRequest {
				t.Fatalf("exit status %d, want %d", got, exitRequest)
			}
			for _, want := range tc.wantOut {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not hold %q", want)
				}
			}
			if now := clk.Now(); now.Before(exp) {
				t.Errorf("exited at %v, before the token expired at %v", now, exp)
			}
			reqs := f.srv.Requests()
			if last := reqs[len(reqs)-1].Time; !last.Before(exp) {
				t.Errorf("a request at %v, after expiry at %v", last, exp)
			}
			_, failed := l.log.counts()
			// A first renewal drawn as late as 75% of the hour leaves 15 minutes, in which a refused
			// renewal yields a quarter to a half of what is left: 4 attempts at the fewest.
			if tc.refuse && (failed < 4 || len(reqs) != failed+1) {
				t.Errorf("%d requests and %d failure lines, want a first token and several retries, each logged", len(reqs), failed)
			}
			t.Logf("%d renewal attempts before expiry", len(reqs)-1)
		})
	}
}

// TestRefreshStuckRenewal: a renewal whose credential read hangs (a hung FUSE or network file; here a
// file lease, see [holdReleasableLease]) ends after BEARER_TOKEN_TIMEOUT as a failed renewal, logged and
// retried, with the current token left in place; once the file answers again the next renewal succeeds.
func TestRefreshStuckRenewal(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.env["BEARER_TOKEN_TIMEOUT"] = "2s" // the first token too, on a loaded machine
	clk := newFakeClock()
	clk.Pause()
	l := startLoop(t, f, clk, &logBuffer{})
	l.started()
	first := f.readToken()
	waitBlocked, release := holdReleasableLease(t, f.spFile)
	clk.Resume()
	waitBlocked()
	l.waitFor("failed renewal", func() bool { _, failed := l.log.counts(); return failed >= 1 })
	if got := f.readToken(); got != first {
		t.Error("the token file changed while the renewal hung")
	}
	release()
	l.renewals(1)
	if _, err := l.stop(); err != nil {
		t.Errorf("refresh mode stopped with %v, want nil", err)
	}
	out := l.log.String()
	t.Logf("log:\n%s", out)
	for _, want := range []string{"BEARER_TOKEN_TIMEOUT (2s) ran out", "did not return", "token_expires="} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not hold %q", want)
		}
	}
	if f.readToken() == first {
		t.Error("the token file still holds the first token after the recovery")
	}
}

// TestRefreshRotation rotates the credential between renewals, as the kubelet does: a Secret volume's
// "..data" switched to a new directory with a new client secret that the stand-in now requires, or a
// new projected service account token. The next renewal uses it, and succeeds.
func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	const newSecret = "Rq~9R~the-rotated-secret.8eXwZ_aLq1"
	for _, tc := range []struct {
		name   string
		setup  func(f *fixture)
		rotate func(f *fixture)
		sent   func(r entratest.Request) string // the credential a request carried
	}{
		{"Secret volume: ..data switched to a new secret",
			func(f *fixture) {
				vol := filepath.Join(f.dir, "secret")
				mustDo(f.t, os.Mkdir(vol, 0o755))
				writeSecretVolume(f, vol, "..2026_12_01_22_00_00.000000001", entratest.DefaultSecret)
				mustDo(f.t, os.Symlink("..data/sp.json", filepath.Join(vol, "sp.json")))
				f.env["ENTRA_SERVICE_PRINCIPAL"] = filepath.Join(vol, "sp.json")
			},
			func(f *fixture) {
				f.srv.Change(func() {
					app := f.srv.Apps[entratest.DefaultClientID]
					app.Secret = newSecret
					f.srv.Apps[entratest.DefaultClientID] = app
				})
				writeSecretVolume(f, filepath.Join(f.dir, "secret"), "..2026_12_01_23_00_00.000000002", newSecret)
			},
			func(r entratest.Request) string { return r.Form.Get("client_secret") }},
		{"projected service account token rotated",
			func(f *fixture) {
				f.useWorkloadIdentity(map[string]any{"exp": time.Now().Add(1000 * time.Hour).Unix(), "jti": "first"})
			},
			func(f *fixture) {
				token := must(entratest.ServiceAccountToken(map[string]any{"exp": time.Now().Add(1000 * time.Hour).Unix(), "jti": "second"}))
				tmp := f.env["AZURE_FEDERATED_TOKEN_FILE"] + ".tmp"
				mustDo(f.t, os.WriteFile(tmp, []byte(token), 0o600))
				mustDo(f.t, os.Rename(tmp, f.env["AZURE_FEDERATED_TOKEN_FILE"]))
			},
			func(r entratest.Request) string { return r.Form.Get("client_assertion") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			tc.setup(f)
			clk := newFakeClock()
			clk.Pause()
			l := startLoop(t, f, clk, &logBuffer{})
			l.started()
			tc.rotate(f)
			clk.Resume()
			l.renewals(1)
			if _, err := l.stop(); err != nil {
				t.Errorf("refresh mode stopped with %v, want nil", err)
			}
			if _, failed := l.log.counts(); failed != 0 {
				t.Errorf("%d failed renewals, want 0; log:\n%s", failed, l.log.String())
			}
			reqs := f.srv.Requests()
			if len(reqs) < 2 {
				t.Fatalf("%d requests, want at least 2", len(reqs))
			}
			if tc.sent(reqs[0]) == tc.sent(reqs[1]) {
				t.Error("the renewal sent the credential of the first request, not the rotated one")
			}
		})
	}
}

// writeSecretVolume lays out a Kubernetes Secret volume in vol as the kubelet's atomic writer does:
// the service principal file with secret in a new timestamped directory, then "..data" switched to
// it with a rename.
func writeSecretVolume(f *fixture, vol, dataDir, secret string) {
	f.t.Helper()
	sp := must(json.Marshal(map[string]any{"appId": entratest.DefaultClientID, "displayName": entratest.DefaultDisplayName,
		"password": secret, "tenant": entratest.DefaultTenantID}))
	mustDo(f.t, os.Mkdir(filepath.Join(vol, dataDir), 0o755))
	mustDo(f.t, os.WriteFile(filepath.Join(vol, dataDir, "sp.json"), sp, 0o600))
	mustDo(f.t, os.Symlink(dataDir, filepath.Join(vol, "..data_tmp")))
	mustDo(f.t, os.Rename(filepath.Join(vol, "..data_tmp"), filepath.Join(vol, "..data")))
}

// TestRefreshStop cancels refresh mode, as SIGTERM does, while it waits for the next renewal, in the
// middle of a renewal request that Entra does not answer, and during a backoff: it returns nil (exit
// status 0) at once, leaving the current token in the file and nothing else.
func TestRefreshStop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		then func(l *loop)
	}{
		{"waiting for the renewal", func(l *loop) {}},
		{"during a renewal request", func(l *loop) {
			l.f.srv.Enqueue(entratestHang())
			l.clk.Resume()
			l.waitFor("renewal request", func() bool { return len(l.f.srv.Requests()) == 2 })
		}},
		{"during a backoff", func(l *loop) {
			l.f.srv.Enqueue(entratest.Response{Status: 503, Then: l.clk.Pause})
			l.clk.Resume()
			l.waitFor("failed renewal", func() bool { _, failed := l.log.counts(); return failed == 1 })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			clk := newFakeClock()
			clk.Pause()
			l := startLoop(t, f, clk, &logBuffer{})
			l.started()
			first := f.readToken()
			tc.then(l)
			took, err := l.stop()
			t.Logf("returned %v after cancellation", took)
			if err != nil {
				t.Errorf("refresh mode stopped with %v, want nil (exit status 0)", err)
			}
			if took > 10*time.Second {
				t.Errorf("returned %v after cancellation, as if it waited for Entra or the backoff", took)
			}
			if !strings.Contains(l.log.String(), "stopping; the token file stays in place") {
				t.Errorf("log does not say it stops:\n%s", l.log.String())
			}
			if f.readToken() != first {
				t.Error("the token file changed")
			}
			if diff := cmp.Diff([]string{"token"}, f.dirEntries()); diff != "" {
				t.Errorf("token directory (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRefreshStopStuck cancels refresh mode, as SIGTERM does, while a renewal hangs opening the
// credential (a file lease, see [holdReleasableLease]): it returns nil (exit status 0) at once, as it
// does during a request or a wait, saying it stopped, with the current token left in the file.
func TestRefreshStopStuck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	clk := newFakeClock()
	clk.Pause()
	l := startLoop(t, f, clk, &logBuffer{})
	l.started()
	first := f.readToken()
	waitBlocked, _ := holdReleasableLease(t, f.spFile)
	clk.Resume()
	waitBlocked()
	took, err := l.stop()
	t.Logf("returned %v after cancellation: %v; log:\n%s", took, err, l.log.String())
	if err != nil {
		t.Errorf("refresh mode stopped with %v, want nil", err)
	}
	if took > 5*time.Second {
		t.Errorf("returned %v after cancellation", took)
	}
	if !strings.Contains(l.log.String(), "stopping; the token file stays in place") {
		t.Error("the log does not say it stopped")
	}
	if strings.Contains(l.log.String(), "renewing access token failed") {
		t.Error("the log reports the abandoned renewal as a failure")
	}
	if f.readToken() != first {
		t.Error("the token file changed")
	}
}

// TestRefreshResources renews 120 times and compares goroutines and heap after renewal 20 and after
// renewal 120: goroutines must not grow, and the heap must stay within 2 MiB (the test's own records
// of requests grow by a few hundred KiB). It runs alone (not in parallel), so that the counts are
// this process's idle ones.
func TestRefreshResources(t *testing.T) {
	f := newFixture(t)
	clk := newFakeClock()
	type sample struct {
		goroutines int
		heap       uint64
	}
	at := map[int]chan struct{}{21: make(chan struct{}), 121: make(chan struct{})}
	clk.onWait = func(n int) {
		if c, ok := at[n]; ok {
			clk.Pause()
			close(c)
		}
	}
	l := startLoop(t, f, clk, &logBuffer{discard: true})
	measure := func() sample {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return sample{runtime.NumGoroutine(), m.HeapAlloc}
	}
	settle := func(want int) sample {
		var s sample
		for range 250 { // closed connections' goroutines end shortly after
			if s = measure(); want == 0 || s.goroutines <= want {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		return s
	}
	var samples []sample
	for _, n := range []int{21, 121} {
		select {
		case <-at[n]:
		case <-time.After(60 * time.Second):
			t.Fatalf("no wait %d after 60 s", n)
		}
		want := 0
		if len(samples) > 0 {
			want = samples[0].goroutines
		}
		time.Sleep(100 * time.Millisecond)
		samples = append(samples, settle(want))
		clk.Resume()
	}
	renewed, failed := l.log.counts()
	if _, err := l.stop(); err != nil {
		t.Errorf("refresh mode stopped with %v, want nil", err)
	}
	t.Logf("after 20 renewals: %d goroutines, heap %d KiB; after 120: %d goroutines, heap %d KiB (%+d KiB); %d renewals, %d failures in all",
		samples[0].goroutines, samples[0].heap>>10, samples[1].goroutines, samples[1].heap>>10,
		(int64(samples[1].heap)-int64(samples[0].heap))>>10, renewed, failed)
	if samples[1].goroutines > samples[0].goroutines {
		t.Errorf("goroutines grew from %d to %d over 100 renewals", samples[0].goroutines, samples[1].goroutines)
	}
	if growth := int64(samples[1].heap) - int64(samples[0].heap); growth > 2<<20 {
		t.Errorf("heap grew by %d KiB over 100 renewals", growth>>10)
	}
}

// TestRefreshGivesWay: a sidecar that a throttling tenant has refused before (a renewal refused with
// Retry-After in its last cycle, or its own token lost, expired, in the file at start) does not retry
// the next refused renewal: it logs so, keeps the file until the token expires, then exits with status
// 10 saying why, having made no request after the refusal. One that was never refused retries.
func TestRefreshGivesWay(t *testing.T) {
	t.Parallel()
	refusal := entratest.Response{Status: 429, Header: map[string]string{"Retry-After": "5"}, Body: "slow down"}
	outage := entratest.Response{Status: 503, Header: map[string]string{"Retry-After": "5"}, Body: "down"}
	for _, tc := range []struct {
		name     string
		lost     bool // start with our own token file, expired
		requests int  // in all, the first token's included
	}{
		{"token lost before: the first refused renewal gives way", true, 2},
		{"a refused renewal retried, then the next refused gives way", false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tc.lost {
				mustDo(t, os.WriteFile(f.tokenFile, []byte(tokenFor(t, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()})), 0o644))
				mustDo(t, os.Chmod(f.tokenFile, 0o644))
			}
			var mu sync.Mutex
			ok := 0
			f.srv.Answered = func(_ entratest.Request, status int) {
				mu.Lock()
				defer mu.Unlock()
				if status != 200 {
					return
				}
				ok++
				// After the first token; without a lost token, also after the renewal retried.
				if ok == 1 && tc.lost || ok == 2 && !tc.lost {
					f.srv.Enqueue(refusal)
				}
			}
			clk := newFakeClock()
			clk.Pause()
			l := startLoop(t, f, clk, &logBuffer{})
			l.started()
			if !tc.lost {
				f.srv.Enqueue(refusal) // the first renewal: refused, then retried
			}
			clk.Resume()
			err := l.wait()
			out := l.log.String()
			t.Logf("error: %v; log:\n%s", err, out)
			if got := exitStatus(err); got != exitRequest {
				t.Fatalf("exit status %d, want %d", got, exitRequest)
			}
			for _, want := range []string{"expired at", "not retried, giving way to pods without a token", "429 Too Many Requests"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not hold %q", want)
				}
			}
			if !strings.Contains(out, "not retrying: the server is throttling") {
				t.Error("the log does not say the refused renewal is not retried")
			}
			if !tc.lost && !strings.Contains(out, "renewed access token") {
				t.Error("the first refused renewal was not retried to a success")
			}
			reqs := f.srv.Requests()
			if len(reqs) != tc.requests {
				t.Errorf("%d requests, want %d", len(reqs), tc.requests)
			}
			_, exp, err := parseTokenClaims(f.readToken())
			if err != nil {
				t.Fatal(err)
			}
			if now := clk.Now(); now.Before(exp) {
				t.Errorf("exited at %v, before the token expired at %v", now, exp)
			}
		})
	}
	// An outage (503, with a Retry-After) is no throttling: a pod that lost its token before retries.
	t.Run("token lost before, then a 503 with Retry-After: retried", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		mustDo(t, os.WriteFile(f.tokenFile, []byte(tokenFor(t, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()})), 0o644))
		mustDo(t, os.Chmod(f.tokenFile, 0o644))
		clk := newFakeClock()
		clk.Pause()
		l := startLoop(t, f, clk, &logBuffer{})
		l.started()
		f.srv.Enqueue(outage)
		clk.Resume()
		l.renewals(1)
		if _, err := l.stop(); err != nil {
			t.Errorf("refresh mode stopped with %v, want nil", err)
		}
		out := l.log.String()
		if strings.Contains(out, "not retrying") || !strings.Contains(out, "503 Service Unavailable") {
			t.Errorf("want the 503 logged and retried:\n%s", out)
		}
	})
}
