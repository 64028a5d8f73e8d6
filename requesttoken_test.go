package main

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"testing"
	"time"
)

// TestRequestTokenRefusals: requestToken counts the refusals (429) from failed, the count it is given,
// and not the other failures (a network error, a 503), and returns that count with the token.
func TestRequestTokenRefusals(t *testing.T) {
	t.Parallel()
	throttled := &retryable{err: errors.New("token response: 429 Too Many Requests"), throttled: true}
	outage := &retryable{err: errors.New("token response: 503 Service Unavailable")}
	network := &retryable{err: errors.New("sending token request: connection refused")}
	for _, failed := range []int{0, throttledFailures} {
		answers := []error{throttled, outage, network, throttled, nil}
		try := func(context.Context) (*tokenResponse, error) {
			err := answers[0]
			answers = answers[1:]
			if err != nil {
				return nil, err
			}
			return &tokenResponse{AccessToken: "x"}, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, refusals, err := requestToken(ctx, "https://login.example/", failed, try, slog.New(slog.DiscardHandler))
		cancel()
		if err != nil || refusals != failed+2 {
			t.Errorf("requestToken from %d: %d refusals, %v; want %d, nil", failed, refusals, err, failed+2)
		}
	}
}

// TestRequestTokenLostStart: counted from throttledFailures (a token of ours lost), the first refusal
// with a Retry-After already waits the later half of the time left, not seconds.
func TestRequestTokenLostStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		failed   int
		min, max time.Duration
	}{
		{0, time.Second, 3 * time.Second},
		{throttledFailures, 29 * time.Second, 60 * time.Second},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 61*time.Second)
		var log logBuffer
		try := func(context.Context) (*tokenResponse, error) {
			return nil, &retryable{err: errors.New("429"), retryAfter: time.Second, throttled: true}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _, _ = requestToken(ctx, "https://login.example/", tc.failed, try, slog.New(slog.NewTextHandler(&log, nil)))
		}()
		re := regexp.MustCompile(`retry_in=(\S+)`)
		var m []string
		for deadline := time.Now().Add(10 * time.Second); m == nil && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			m = re.FindStringSubmatch(log.String())
		}
		cancel()
		<-done
		if m == nil {
			t.Fatalf("from %d: no retry logged:\n%s", tc.failed, log.String())
		}
		wait, err := time.ParseDuration(m[1])
		if err != nil || wait < tc.min || wait > tc.max {
			t.Errorf("from %d failures, the first retry waits %s, want %v to %v", tc.failed, m[1], tc.min, tc.max)
		}
	}
}
