// Command fleet measures a fleet of refresh-mode sidecars against the Entra stand-in, as issue 16
// asks: N copies of the built program (the release build, or the measure build whose short renewal
// floor lets 60-second tokens stand for hour-long ones) started at once, each with its own client ID
// and token directory, against one stand-in that admits -rate requests a second and answers the rest
// 429 with Retry-After. It reads every token file every half second, restarts a sidecar that exits as
// the kubelet restarts a native sidecar (after 10 s, doubling to 5 minutes), and at the end stops them
// all with SIGTERM and reports: time to first token (p50, p95, max), exits before SIGTERM (and how many
// while the token file held a valid token), expired-file observations, requests and 429s per pod,
// requests per issued token, peak requests per second, the spread of requests after the first lifetime
// (coefficient of variation per second, divided by random arrivals' 1/sqrt(mean)), and RSS and CPU
// time per sidecar. With -kill-restart it also SIGKILLs every sidecar once all hold a token and starts
// them again in the same directories, and counts the requests that restart made.
//
// Figures only: it asserts nothing. .ci/measure-fleet runs the scenarios of issue 16 with it.
//
//	go run ./internal/fleet -bin PROGRAM [-pods 500] [-rate 20] [-retry-after 5] [-lifetime 60s] [-run 4m] [-kill-restart]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

func main() {
	bin := flag.String("bin", "", "the built program (required)")
	pods := flag.Int("pods", 500, "sidecars")
	rate := flag.Float64("rate", 20, "requests a second the stand-in admits; 0 for no limit")
	retryAfter := flag.Int("retry-after", 5, "Retry-After of a 429, in seconds")
	lifetime := flag.Duration("lifetime", time.Minute, "lifetime of the stand-in's tokens")
	runFor := flag.Duration("run", 4*time.Minute, "how long the fleet runs before SIGTERM")
	killRestart := flag.Bool("kill-restart", false, "SIGKILL every sidecar once all hold a token, start them again in the same directories, and count the requests that makes")
	timeout := flag.String("timeout", "", "BEARER_TOKEN_TIMEOUT of the sidecars (default: the program's)")
	keep := flag.String("keep", "", "keep the work directory, the stand-in's request log and the sidecars' logs under this directory")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "fleet: -bin is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, fleetConfig{bin: *bin, pods: *pods, rate: *rate, retryAfter: *retryAfter, lifetime: *lifetime,
		run: *runFor, killRestart: *killRestart, timeout: *timeout, keep: *keep}); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

type fleetConfig struct {
	bin         string
	pods        int
	rate        float64
	retryAfter  int
	lifetime    time.Duration
	run         time.Duration
	killRestart bool
	timeout     string
	keep        string
}

// clientID returns pod i's client ID, a GUID.
func clientID(i int) string { return fmt.Sprintf("0c7d5e1a-1111-4222-8333-%012d", i) }

// pod is one sidecar: its directory, the process running now, and what the harness saw of it.
type pod struct {
	i         int
	dir       string
	tokenFile string
	env       []string

	mu        sync.Mutex
	cmd       *exec.Cmd
	running   bool
	starts    int
	exits     []exitRecord // before SIGTERM, not caused by the harness
	killed    bool         // the harness SIGKILLed it: restart at once
	stopping  bool
	finalExit int // status after SIGTERM; -1 while running
	rss, cpu  []float64
	lastToken string
	lastExp   time.Time
}

type exitRecord struct {
	at     time.Duration
	status int
	valid  bool // the token file held a valid token when it exited
}

func run(ctx context.Context, c fleetConfig) error {
	base := "/dev/shm"
	if _, err := os.Stat(base); err != nil {
		base = os.TempDir()
	}
	work, err := os.MkdirTemp(base, "fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	srv, err := entratest.NewServer()
	if err != nil {
		return err
	}
	defer srv.Close()
	srv.TokenLifetime = c.lifetime
	srv.RateLimit = c.rate
	srv.RetryAfter = c.retryAfter
	for i := range c.pods {
		srv.Apps[clientID(i)] = entratest.App{ClientID: clientID(i), DisplayName: fmt.Sprintf("fleet-%d", i), Secret: entratest.DefaultSecret}
	}
	var reqLog bytes.Buffer
	srv.Log = &lockedWriter{w: &reqLog}
	ca, err := entratest.CAPEM()
	if err != nil {
		return err
	}
	caFile := filepath.Join(work, "ca.pem")
	if err := os.WriteFile(caFile, ca, 0o644); err != nil {
		return err
	}

	pods := make([]*pod, c.pods)
	for i := range pods {
		dir := filepath.Join(work, strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		sp, _ := json.Marshal(map[string]string{"appId": clientID(i), "displayName": fmt.Sprintf("fleet-%d", i),
			"password": entratest.DefaultSecret, "tenant": entratest.DefaultTenantID})
		if err := os.WriteFile(filepath.Join(dir, "sp.json"), sp, 0o600); err != nil {
			return err
		}
		p := &pod{i: i, dir: dir, tokenFile: filepath.Join(dir, "token"), finalExit: -1}
		p.env = []string{"SSL_CERT_FILE=" + caFile, "BEARER_TOKEN_REFRESH=true", "ENTRA_SERVICE_PRINCIPAL=" + filepath.Join(dir, "sp.json"),
			"AZURE_RESOURCE=" + entratest.PrometheusResource, "BEARER_TOKEN_FILE=" + p.tokenFile, "AZURE_AUTHORITY_HOST=" + srv.URL}
		if c.timeout != "" {
			p.env = append(p.env, "BEARER_TOKEN_TIMEOUT="+c.timeout)
		}
		pods[i] = p
	}

	start := time.Now()
	var wg sync.WaitGroup
	stopAll := make(chan struct{})
	for _, p := range pods {
		wg.Add(1)
		go func() { defer wg.Done(); p.supervise(c, start, stopAll) }()
	}

	// The reader: every token file every half second.
	type observation struct{ reads, expired, missingAfter int }
	var obs observation
	firstSeen := make([]time.Duration, c.pods)
	readerDone := make(chan struct{})
	stopReader := make(chan struct{})
	go func() {
		defer close(readerDone)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopReader:
				return
			case <-tick.C:
			}
			now := time.Now()
			for i, p := range pods {
				exp, ok := p.readExpiry()
				obs.reads++
				switch {
				case !ok && firstSeen[i] != 0:
					obs.missingAfter++
				case !ok:
				case !exp.After(now):
					obs.expired++
				case firstSeen[i] == 0:
					firstSeen[i] = now.Sub(start)
				}
			}
		}
	}()

	// Resources: every sidecar's RSS and CPU time, sampled now and then.
	go func() {
		for {
			select {
			case <-stopReader:
				return
			case <-time.After(10 * time.Second):
			}
			for _, p := range pods {
				p.sample()
			}
		}
	}()

	var restartRequests, restartReqBefore int
	restartNote := ""
	if c.killRestart {
		// Once every sidecar holds a token: SIGKILL them all and start them again at once.
		deadline := start.Add(c.run / 2)
		for time.Now().Before(deadline) && slices.Contains(firstSeen, 0) {
			time.Sleep(500 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
		restartReqBefore = len(srv.Requests())
		for _, p := range pods {
			p.kill()
		}
		killedAt := time.Now()
		time.Sleep(15 * time.Second)
		restartRequests = len(srv.Requests()) - restartReqBefore
		restartNote = fmt.Sprintf("SIGKILL and restart of %d sidecars at %v: %d token requests in the 15 s after", c.pods, killedAt.Sub(start).Round(time.Second), restartRequests)
	}

	select {
	case <-ctx.Done():
	case <-time.After(time.Until(start.Add(c.run))):
	}
	end := time.Since(start)
	for _, p := range pods {
		p.sample()
	}
	close(stopReader)
	<-readerDone
	close(stopAll)
	for _, p := range pods {
		p.terminate()
	}
	wg.Wait()

	reqs := srv.Requests()
	report(c, pods, reqs, start, end, obs.reads, obs.expired, obs.missingAfter, firstSeen, restartNote)
	if c.keep != "" {
		_ = os.MkdirAll(c.keep, 0o755)
		_ = os.WriteFile(filepath.Join(c.keep, "requests.log"), reqLog.Bytes(), 0o644)
		for _, p := range pods {
			if b, err := os.ReadFile(filepath.Join(p.dir, "log")); err == nil {
				_ = os.WriteFile(filepath.Join(c.keep, fmt.Sprintf("sidecar-%d.log", p.i)), b, 0o644)
			}
		}
	}
	return nil
}

// supervise runs the pod's sidecar as the kubelet runs a native sidecar: started again after it
// exits, after a crash-loop backoff of 10 s doubling to 5 minutes; at once after a SIGKILL of the
// harness's own.
func (p *pod) supervise(c fleetConfig, start time.Time, stop <-chan struct{}) {
	logFile, err := os.OpenFile(filepath.Join(p.dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		panic(err)
	}
	defer logFile.Close()
	backoff := 10 * time.Second
	for {
		cmd := exec.Command(c.bin)
		cmd.Env = p.env
		cmd.Stdout = logFile
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			return
		}
		p.cmd = cmd
		p.starts++
		err := cmd.Start()
		p.running = err == nil
		p.mu.Unlock()
		if err != nil {
			panic(err)
		}
		err = cmd.Wait()
		status := cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			status = 128 + int(ws.Signal())
		}
		_ = err // the status says it
		p.mu.Lock()
		p.running = false
		switch {
		case p.stopping:
			p.finalExit = status
			p.mu.Unlock()
			return
		case p.killed:
			p.killed = false
			p.mu.Unlock()
			continue
		}
		exp, ok := p.readExpiryLocked()
		p.exits = append(p.exits, exitRecord{at: time.Since(start), status: status, valid: ok && exp.After(time.Now())})
		p.mu.Unlock()
		select {
		case <-stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Minute)
	}
}

func (p *pod) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		p.killed = true
		_ = p.cmd.Process.Kill()
	}
}

// terminate sends SIGTERM, as the kubelet does at the pod's end, and waits for the exit.
func (p *pod) terminate() {
	p.mu.Lock()
	p.stopping = true
	if p.running {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	p.mu.Unlock()
}

// sample records the running sidecar's RSS (KiB) and CPU time (ms, user and system).
func (p *pod) sample() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		return
	}
	pid := p.cmd.Process.Pid
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for line := range strings.Lines(string(status)) {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				p.rss = append(p.rss, float64(n))
			}
		}
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
		if _, rest, ok := strings.Cut(string(stat), ") "); ok {
			f := strings.Fields(rest)
			if len(f) > 12 {
				u, _ := strconv.Atoi(f[11])
				s, _ := strconv.Atoi(f[12])
				p.cpu = append(p.cpu, float64(u+s)*10) // clock ticks of 10 ms
			}
		}
	}
}

func (p *pod) readExpiry() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readExpiryLocked()
}

// readExpiryLocked returns the "exp" of the token in the pod's token file; ok is false when there is
// none, or it is not a JWT.
func (p *pod) readExpiryLocked() (time.Time, bool) {
	b, err := os.ReadFile(p.tokenFile)
	if err != nil || len(b) == 0 {
		return time.Time{}, false
	}
	if string(b) == p.lastToken {
		return p.lastExp, true
	}
	tok, err := jwt.ParseSigned(string(b), []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return time.Time{}, false
	}
	var claims jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil || claims.Expiry == nil {
		return time.Time{}, false
	}
	p.lastToken, p.lastExp = string(b), claims.Expiry.Time()
	return p.lastExp, true
}

// report prints the figures.
func report(c fleetConfig, pods []*pod, reqs []entratest.Request, start time.Time, end time.Duration, reads, expired, missingAfter int, firstSeen []time.Duration, restartNote string) {
	n := len(pods)
	perPod := make([]int, n)
	refusedPerPod := make([]int, n)
	first := make([]time.Duration, n)
	issued, refused := 0, 0
	var arrivals []time.Duration
	index := make(map[string]int, n)
	for i := range n {
		index[clientID(i)] = i
	}
	for _, r := range reqs {
		at := r.Time.Sub(start)
		arrivals = append(arrivals, at)
		i, ok := index[r.Form.Get("client_id")]
		if !ok {
			continue
		}
		perPod[i]++
		switch r.Status {
		case 200:
			issued++
			if first[i] == 0 {
				first[i] = at
			}
		case 429:
			refused++
			refusedPerPod[i]++
		}
	}
	var got []time.Duration
	without := 0
	for _, f := range first {
		if f == 0 {
			without++
		} else {
			got = append(got, f)
		}
	}
	slices.Sort(got)
	fmt.Printf("fleet: %d sidecars (%s), stand-in admits %s, Retry-After %d s, %v tokens, %v run\n",
		n, filepath.Base(c.bin), rateText(c.rate), c.retryAfter, c.lifetime, end.Round(time.Second))
	if len(got) > 0 {
		fmt.Printf("first token (stand-in's 200): p50 %v, p95 %v, max %v; %d pods without one\n",
			pct(got, 50).Round(100*time.Millisecond), pct(got, 95).Round(100*time.Millisecond), got[len(got)-1].Round(100*time.Millisecond), without)
	} else {
		fmt.Printf("first token: none of %d pods got one\n", n)
	}
	var exits, exitsValid, starts int
	statuses := map[int]int{}
	final := map[int]int{}
	var rss, cpu []float64
	for _, p := range pods {
		starts += p.starts
		for _, e := range p.exits {
			exits++
			statuses[e.status]++
			if e.valid {
				exitsValid++
			}
		}
		final[p.finalExit]++
		if len(p.rss) > 0 {
			rss = append(rss, slices.Max(p.rss))
		}
		if len(p.cpu) > 0 {
			cpu = append(cpu, p.cpu[len(p.cpu)-1])
		}
	}
	fmt.Printf("exits before SIGTERM: %d (by status %v), %d of them while the token file held a valid token; %d starts in all\n", exits, statuses, exitsValid, starts)
	fmt.Printf("exit statuses after SIGTERM: %v\n", final)
	fmt.Printf("token file reads: %d, %d found an expired token, %d found none after a first token\n", reads, expired, missingAfter)
	slices.Sort(perPod)
	slices.Sort(refusedPerPod)
	fmt.Printf("requests: %d, %d tokens issued (%.2f requests per token), %d refused with 429\n", len(reqs), issued, float64(len(reqs))/math.Max(float64(issued), 1), refused)
	fmt.Printf("per pod: requests mean %.2f, p95 %d, max %d; 429s mean %.2f, p95 %d, max %d\n",
		float64(len(reqs))/float64(n), pct(perPod, 95), perPod[n-1], float64(refused)/float64(n), pct(refusedPerPod, 95), refusedPerPod[n-1])
	if end > 5*time.Minute {
		fmt.Printf("requests per token issued, by 5-minute window: %s\n", windows(reqs, start, end, 5*time.Minute, false))
		fmt.Printf("requests per token issued, since the start, at each 5 minutes: %s\n", windows(reqs, start, end, 5*time.Minute, true))
	}
	peak, at := peakPerSecond(arrivals)
	fmt.Printf("peak requests per second: %d (second %d)\n", peak, at)
	if end > c.lifetime+10*time.Second {
		sp, mean := spread(arrivals, c.lifetime, end)
		fmt.Printf("spread of requests after the first lifetime (%v to %v): %.2f times random arrivals' (mean %.2f per second)\n", c.lifetime, end.Round(time.Second), sp, mean)
	}
	if len(rss) > 0 {
		slices.Sort(rss)
		slices.Sort(cpu)
		fmt.Printf("per sidecar: peak RSS sampled median %.1f MiB, max %.1f MiB; CPU time median %.0f ms, max %.0f ms (over the last process's life)\n",
			pct(rss, 50)/1024, rss[len(rss)-1]/1024, pct(cpu, 50), cpu[len(cpu)-1])
	}
	if restartNote != "" {
		fmt.Println(restartNote)
	}
}

// windows returns requests per token issued (a 200) in each window of reqs from start to end, or,
// cumulative, from start to each window's end: "0-5m 3.10, 5-10m 1.52, ...".
func windows(reqs []entratest.Request, start time.Time, end, window time.Duration, cumulative bool) string {
	n := int(end / window)
	if end%window >= time.Second { // a last, partial window; not the run's last instant
		n++
	}
	count := make([][2]int, n)
	for _, r := range reqs {
		w := int(r.Time.Sub(start) / window)
		if w < 0 || w >= n {
			continue
		}
		count[w][0]++
		if r.Status == 200 {
			count[w][1]++
		}
	}
	var parts []string
	var req, tok int
	for w, c := range count {
		if cumulative {
			req, tok = req+c[0], tok+c[1]
		} else {
			req, tok = c[0], c[1]
		}
		from := time.Duration(w) * window
		if cumulative {
			from = 0
		}
		to := min(time.Duration(w+1)*window, end.Round(time.Second))
		parts = append(parts, fmt.Sprintf("%v-%v %.2f", from, to, float64(req)/math.Max(float64(tok), 1)))
	}
	return strings.Join(parts, ", ")
}

func rateText(r float64) string {
	if r <= 0 {
		return "everything"
	}
	return fmt.Sprintf("%g requests/s", r)
}

// pct returns the p-th percentile of sorted, nearest rank.
func pct[T any](sorted []T, p float64) T {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// peakPerSecond returns the most requests in one second since the start, and which second.
func peakPerSecond(arrivals []time.Duration) (peak, second int) {
	counts := map[int]int{}
	for _, a := range arrivals {
		s := int(a / time.Second)
		counts[s]++
		if counts[s] > peak {
			peak, second = counts[s], s
		}
	}
	return peak, second
}

// spread returns the coefficient of variation of arrivals per second in [from, to), divided by that
// of random (Poisson) arrivals at the same mean rate, 1/sqrt(mean), and the mean: 1 for arrivals as
// even as chance makes them, more for waves.
func spread(arrivals []time.Duration, from, to time.Duration) (ratio, mean float64) {
	n := int((to - from) / time.Second)
	if n <= 0 {
		return 0, 0
	}
	counts := make([]float64, n)
	for _, a := range arrivals {
		if a >= from && a < from+time.Duration(n)*time.Second {
			counts[int((a-from)/time.Second)]++
		}
	}
	var sum, sq float64
	for _, c := range counts {
		sum += c
	}
	mean = sum / float64(n)
	if mean == 0 {
		return 0, 0
	}
	for _, c := range counts {
		sq += (c - mean) * (c - mean)
	}
	return math.Sqrt(sq/float64(n)) / mean * math.Sqrt(mean), mean
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
