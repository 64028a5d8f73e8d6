package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// Several resources from one process (BEARER_TOKEN_RESOURCES): one credential, and per resource a
// token file with its own audience check, format, renewal schedule and -check. Each resource goes
// through exactly the steps of the single one ([firstToken], [renewLoop]), with its own [config] from
// [config.targets]; what is added here only runs them side by side. Requests are spaced: the first
// tokens are requested one after the other, and every request of any resource waits until
// requestSpacing after the one before ([spacer]), so that a pod's tokens never hit Entra together.

// requestSpacing is the least time between two token requests of one process with several resources.
const requestSpacing = time.Second

// spacer hands out request times at least gap apart.
type spacer struct {
	gap  time.Duration
	mu   sync.Mutex
	next time.Time
}

// wait returns once gap has passed since the previous caller's turn, or ctx's cause when ctx ends
// first. The mutex is held only to take a turn.
func (s *spacer) wait(ctx context.Context) error {
	s.mu.Lock()
	at := time.Now()
	if at.Before(s.next) {
		at = s.next
	}
	s.next = at.Add(s.gap)
	s.mu.Unlock()
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		}
	}
	return nil
}

// httpClient returns the token request's client ([newHTTPClient]) for c's token file, its requests
// spaced from other resources' and counted in the metrics, when either is on.
func (c config) httpClient() *http.Client {
	client := newHTTPClient()
	if c.metrics != nil || c.spacer != nil {
		client.Transport = &requestTransport{base: client.Transport, m: c.metrics, spacer: c.spacer, file: c.tokenFile}
	}
	return client
}

// requestTransport waits for the spacer's turn, then records each round trip's status in m.
type requestTransport struct {
	base   http.RoundTripper
	m      *metrics
	spacer *spacer
	file   string
}

func (t *requestTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.spacer != nil {
		if err := t.spacer.wait(req.Context()); err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
	}
	resp, err := t.base.RoundTrip(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	t.m.request(t.file, status)
	return resp, err
}

// CloseIdleConnections passes on to the base transport, as http.Client.CloseIdleConnections needs.
func (t *requestTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// resourceLog returns log with the resource and file of t when cfg keeps several tokens, so that
// each line says which; log itself for one, whose lines stay as they were.
func resourceLog(log *slog.Logger, cfg, t config) *slog.Logger {
	if len(cfg.more) == 0 {
		return log
	}
	return log.With("token_file", t.tokenFile)
}

// runJobs is [runJob] for several resources, srcs one per target: the first tokens ([firstTokens]),
// then in refresh mode the renewals of each ([renewAll]).
func runJobs(ctx context.Context, cfg config, srcs []source, log *slog.Logger, clk clock) error {
	toks, err := firstTokens(ctx, cfg, srcs, log, clk.Now)
	if err != nil || !cfg.refresh {
		return err
	}
	return renewAll(ctx, cfg, srcs, toks, log, clk)
}

// firstTokens is the one-shot run for every resource, one after the other: [firstToken] each, with
// its source. Every file's place is checked first. If one fails, the files this run created before it
// are removed (a failed run leaves no file behind), but for those that replaced a file
// (BEARER_TOKEN_FILE_REPLACE, refresh mode), which stay. It returns the tokens in targets' order.
func firstTokens(ctx context.Context, cfg config, srcs []source, log *slog.Logger, now func() time.Time) ([]issued, error) {
	// As the one-shot checks its one file (oneShot), within BEARER_TOKEN_TIMEOUT: a second file that
	// cannot be written costs no request.
	pctx, cancel := cfg.withTimeout(ctx)
	defer cancel()
	err := untilDone(pctx, func() error {
		for _, t := range cfg.targets() {
			if err := checkExistingTokenFile(t.tokenFile, t.replace); err != nil {
				return err
			}
			if err := checkTokenDir(t.tokenFile, t.replace); err != nil {
				return withExit(exitWrite, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var toks []issued
	targets := cfg.targets()
	for i, t := range targets {
		tok, err := firstToken(ctx, t, srcs[i], resourceLog(log, cfg, t), now)
		if err != nil {
			if !cfg.replace {
				for _, done := range targets[:i] {
					_ = os.Remove(done.tokenFile)
				}
			}
			return nil, fmt.Errorf("token for %q in %q: %w", t.resource, t.tokenFile, err)
		}
		toks = append(toks, tok)
	}
	return toks, nil
}

// renewAll runs [keepFresh] for each resource, with its source and first token, side by side, until
// ctx ends or one returns an error: a token expired without a renewal (exit status 10, naming its
// file), or a renewal stuck at the stop. Then it stops the others and returns that error.
func renewAll(ctx context.Context, cfg config, srcs []source, toks []issued, log *slog.Logger, clk clock) error {
	targets := cfg.targets()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errs := make(chan error, len(targets))
	for i, t := range targets {
		go func() { errs <- keepFresh(ctx, t, srcs[i], resourceLog(log, cfg, t), clk, toks[i]) }()
	}
	var first error
	for range targets {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel(fmt.Errorf("another token's renewals ended: %w", err))
		}
	}
	return first
}

// credentialKind returns the value of the "credential" attribute in attrs (key, value pairs), the
// kind of credential a source logs ("client secret", "certificate", …); "" if there is none.
func credentialKind(attrs []any) string {
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i] == "credential" {
			return fmt.Sprint(attrs[i+1])
		}
	}
	return ""
}
