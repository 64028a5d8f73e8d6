package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/densify-dev/azure-rest-api-token/internal/entratest"
)

// TestRefreshOddAnswers plays the odd answers of issue 16 against refresh mode, on the simulated clock
// with the release policy: each must leave a valid token in the file and the renewals on a sane
// schedule.
func TestRefreshOddAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// setup runs once the first token (an hour long) is in the file, with the clock paused.
		setup func(f *fixture)
		check func(t *testing.T, f *fixture, l *loop, firstExp time.Time)
	}{
		{"Retry-After of a billion seconds: one last attempt before expiry",
			func(f *fixture) {
				f.srv.Enqueue(entratest.Response{Status: 429, Header: map[string]string{"Retry-After": "1000000000"}})
			},
			func(t *testing.T, f *fixture, l *loop, firstExp time.Time) {
				l.renewals(1)
				reqs := f.srv.Requests()
				if last := reqs[2].Time; !last.Before(firstExp.Add(-refreshPolicy.lastAttempt + time.Second)) {
					t.Errorf("the attempt after the refusal came at %v, not before the last attempt's point (expiry %v)", last, firstExp)
				}
			}},
		{"Retry-After as an HTTP date two hours ahead",
			func(f *fixture) {
				f.srv.Enqueue(entratest.Response{Status: 503, Header: map[string]string{"Retry-After": time.Now().Add(2 * time.Hour).UTC().Format(http.TimeFormat)}})
			},
			func(t *testing.T, f *fixture, l *loop, firstExp time.Time) {
				l.renewals(1)
				if last := f.srv.Requests()[2].Time; !last.Before(firstExp) {
					t.Errorf("the attempt after the refusal came at %v, after expiry %v", last, firstExp)
				}
			}},
		{"renewals return shorter-lived tokens: the file keeps the longer one",
			func(f *fixture) { f.srv.Change(func() { f.srv.TokenLifetime = 10 * time.Minute }) },
			func(t *testing.T, f *fixture, l *loop, firstExp time.Time) {
				l.renewals(1)
				_, failed := l.log.counts()
				if failed == 0 || !strings.Contains(l.log.String(), "sooner than the one in the token file") {
					t.Errorf("%d failed renewals; want the shorter tokens refused, and logged", failed)
				}
				_, exp, err := parseTokenClaims(f.readToken())
				if err != nil || exp.Before(firstExp) {
					t.Errorf("the file's token expires at %v (%v), before the first one's %v", exp, err, firstExp)
				}
			}},
		{"a renewal's token not valid for 10 years: refused, the next renewal succeeds",
			func(f *fixture) {
				f.srv.Enqueue(okBody(tokenForLater(map[string]any{"nbf": time.Now().AddDate(10, 0, 0).Unix(), "exp": time.Now().AddDate(0, 0, 1).Unix()}), "Bearer"))
			},
			func(t *testing.T, f *fixture, l *loop, firstExp time.Time) {
				l.renewals(1)
				if !strings.Contains(l.log.String(), "not valid before") {
					t.Error("the log does not say the token was not valid yet")
				}
				c, err := parseClaims(f.readToken())
				if err != nil || c.notBefore.After(time.Now().Add(time.Hour)) {
					t.Errorf("the file holds a token valid from %v (%v)", c.notBefore, err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			clk := newFakeClock()
			clk.Pause()
			l := startLoop(t, f, clk, &logBuffer{})
			l.started()
			_, firstExp, err := parseTokenClaims(f.readToken())
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(f)
			clk.Resume()
			tc.check(t, f, l, firstExp)
			if _, err := l.stop(); err != nil {
				t.Errorf("refresh mode stopped with %v, want nil; log:\n%s", err, l.log.String())
			}
		})
	}
}

// TestRefreshCenturyToken: a token that claims a 100-year lifetime is renewed within 18 hours, as a
// day-long one would be, not in 50 years.
func TestRefreshCenturyToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.srv.TokenLifetime = 100 * 365 * 24 * time.Hour
	clk := newFakeClock()
	clk.Pause()
	start := clk.Now()
	l := startLoop(t, f, clk, &logBuffer{})
	l.started()
	m := regexp.MustCompile(`next_renewal=(\S+)`).FindStringSubmatch(l.log.String())
	if m == nil {
		t.Fatalf("no next_renewal in the log:\n%s", l.log.String())
	}
	next, err := time.Parse(time.RFC3339, m[1])
	if err != nil {
		t.Fatal(err)
	}
	if next.Sub(start) > 18*time.Hour {
		t.Errorf("next renewal at %v, %v after the token was received; want within 18 h", next, next.Sub(start))
	}
	if _, err := l.stop(); err != nil {
		t.Errorf("refresh mode stopped with %v, want nil", err)
	}
}
