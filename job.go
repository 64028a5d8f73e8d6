package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// The job: [getToken] reads the environment once ([loadConfig], [loadSource]), then [firstToken] gets,
// checks and publishes one token, and in refresh mode [keepFresh] keeps it fresh. Below them each step
// has its file: the credential sources (one attempt at a token each), the request, Entra's errors, the
// token check, the write.

// getToken does the job, in the order that fails fastest and never sends a request that cannot succeed:
// check the environment, that no token file exists (or, with replace, only a regular file), and the
// credential; make sure the token file can be created; request the token; check it; publish the file
// (see [firstToken]). In refresh mode it then keeps the file fresh (see [keepFresh]). It is the only
// function of the job that reads the environment. Its errors carry their exit status.
func getToken(ctx context.Context, getenv func(string) string, log *slog.Logger) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	var srcs []source // one per token: the same credential, each for its resource
	for _, t := range cfg.targets() {
		src, err := loadSource(getenv, t.authority, t.resource)
		if err != nil {
			return err
		}
		srcs = append(srcs, src)
	}
	if len(cfg.more) > 0 {
		cfg.spacer = &spacer{gap: requestSpacing}
	}
	if cfg.metricsAddr != "" {
		l, err := listenMetrics(cfg.metricsAddr)
		if err != nil {
			return err
		}
		cfg.metrics = newMetrics(cmp.Or(version, buildInfoVersion()), commit, "refresh", cfg.targets())
		mctx, stop := context.WithCancel(ctx)
		defer stop()
		go serveMetrics(mctx, l, cfg.metrics)
		log.Info("serving metrics", "address", l.Addr().String(), "path", "/metrics")
	}
	if len(srcs) > 1 {
		return runJobs(ctx, cfg, srcs, log, systemClock{})
	}
	return runJob(ctx, cfg, srcs[0], log, systemClock{})
}

// runJob is the run after the environment was read: the first token, and in refresh mode the renewals,
// on clk.
func runJob(ctx context.Context, cfg config, src source, log *slog.Logger, clk clock) error {
	tok, err := firstToken(ctx, cfg, src, log, clk.Now)
	if err != nil || !cfg.refresh {
		return err
	}
	return keepFresh(ctx, cfg, src, log, clk, tok)
}

// firstToken is the one-shot run after [loadConfig], the start of refresh mode too: [oneShot] within
// BEARER_TOKEN_TIMEOUT, which ends it whatever it waits on, a hung file system included ([untilDone]).
// It returns the token it published, or an error carrying the exit status. now is the clock the
// token's expiry is checked against.
func firstToken(ctx context.Context, cfg config, src source, log *slog.Logger, now func() time.Time) (issued, error) {
	ctx, cancel := cfg.withTimeout(ctx)
	defer cancel()
	result := make(chan issued, 1) // read only once the job has returned: no race with an abandoned one
	err := untilDone(ctx, func() error {
		tok, err := oneShot(ctx, cfg, src, log, now)
		result <- tok
		return err
	})
	if err != nil {
		return issued{}, err
	}
	return <-result, nil
}

// oneShot is [firstToken] within its deadline: check the CA files, what is at the token file's path,
// and the credential; make sure the token file can be created; in refresh mode, keep a token file of
// ours that is still good ([adopt]); otherwise request the token, with retries (as a throttled
// fleet's, when the file held a token of ours that had run out); check it; publish the file.
func oneShot(ctx context.Context, cfg config, src source, log *slog.Logger, now func() time.Time) (issued, error) {
	if err := checkTrustedCAs(cfg.caFile, cfg.caDirs); err != nil {
		return issued{}, err
	}
	if err := checkExistingTokenFile(cfg.tokenFile, cfg.replace); err != nil {
		return issued{}, err
	}
	info, err := src.check(now())
	if err != nil {
		return issued{}, err
	}
	if err := context.Cause(ctx); err != nil { // stopped while the credential was read: touch nothing
		return issued{}, withExit(exitConfig, fmt.Errorf("stopped: %w", err))
	}
	if err := checkTokenDir(cfg.tokenFile, cfg.replace); err != nil {
		return issued{}, withExit(exitWrite, err)
	}
	// The refusals firstTokenWait counts from: none, or the slow waits' after a token of ours was lost.
	failed := 0
	if cfg.refresh { // after the directory check: renewals will replace the file there
		tok, ok, lost := adopt(cfg, info, log, now())
		if ok {
			cfg.metrics.setCredential(credentialKind(info.attrs))
			cfg.metrics.published(cfg.tokenFile, tok.expiry, "", tok.received, true) // its "iat" unread: no issue time until the first renewal
			return tok, nil
		}
		if lost {
			failed = throttledFailures
		}
	}

	if info.warning != "" {
		log.Warn(info.warning, info.warningAttrs...)
	}
	log.Info("requesting access token", slices.Concat([]any{"version", programVersion()}, info.who,
		[]any{"resource", cfg.resource}, info.attrs, []any{"token_endpoint", info.endpoint, "proxy", info.proxy}, cfg.modeAttrs())...)
	client := cfg.httpClient()
	resp, refusals, err := requestToken(ctx, info.endpoint, failed, func(ctx context.Context) (*tokenResponse, error) {
		return src.token(ctx, client, now())
	}, log)
	if err != nil {
		return issued{}, withExit(exitRequest, err)
	}
	received := now()
	claims, err := checkToken(resp, cfg.audience, received)
	if err != nil {
		return issued{}, withExit(exitTokenInvalid, fmt.Errorf("checking the access token: %w", err))
	}
	if err := writeTokenFile(ctx, cfg.tokenFile, cfg.fileMode, cfg.format.render(resp.AccessToken, claims.expiry, cfg.resource), cfg.replace); err != nil {
		return issued{}, withExit(exitWrite, err)
	}
	cfg.metrics.setCredential(credentialKind(info.attrs))
	cfg.metrics.published(cfg.tokenFile, claims.expiry, resp.AccessToken, received, true)
	log.Info("wrote access token", slices.Concat(info.who, []any{"resource", cfg.resource,
		"audience", claims.matchedAudience, "expires", timestamp(claims.expiry),
		"file", cfg.tokenFile, "mode", fmt.Sprintf("%04o", cfg.fileMode)})...)
	return issued{tokenClaims: claims, received: received, throttled: refusals >= throttledFailures}, nil
}
