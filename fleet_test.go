package main

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// A fleet simulated on the policy's pure functions: N sidecars started together against a tenant that
// admits rate requests a second (a token bucket holding as many) and refuses the rest with 429 and a
// Retry-After; a sidecar without a token gives up at BEARER_TOKEN_TIMEOUT and one whose token expired
// exits, and the kubelet restarts either after its crash-loop backoff (10 s doubling to 5 minutes).
// No process, no network: hours of a fleet in milliseconds, to show that the rules, as numbers, do
// what issue 16 asks before .ci/measure-fleet shows the built program doing it.

type simConfig struct {
	pods     int
	rate     float64       // requests admitted per second; 0 for no limit
	ra       time.Duration // Retry-After of a 429
	lifetime time.Duration // of each token
	run      time.Duration // how long the fleet runs
	policy   renewalPolicy
	timeout  time.Duration // BEARER_TOKEN_TIMEOUT
}

type simResult struct {
	firstToken            []time.Duration // per pod that got one: since the fleet started
	noToken               int             // pods that never got one
	requests, refused     int
	refusedRenewals       int
	issued                int
	issuedAt              []time.Duration // of every token
	exitsValid, exitsNone int             // exits with a valid token (never allowed), and without one (timeout, expiry)
	arrivals              []time.Duration // of every request
}

type simEvent struct {
	at  time.Duration
	pod int
	gen int // the pod's process generation: events of a process that exited are dropped
}

type simQueue []simEvent

func (q simQueue) Len() int           { return len(q) }
func (q simQueue) Less(i, j int) bool { return q[i].at < q[j].at }
func (q simQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)        { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func simulate(c simConfig, seed uint64) simResult {
	rnd := rand.New(rand.NewPCG(seed, 1))
	type pod struct {
		gen       int
		started   time.Duration // this process's start
		expiry    time.Duration // of the token in its file; zero for none
		hasToken  bool          // this process published or holds a token
		prev      time.Duration
		fails     int // counted as firstTokenWait counts them: from throttledFailures after a lost token
		restarts  int
		gotFirst  bool
		firstTime time.Duration
		cong      congestion
		refused   bool // a renewal of the current token was refused
	}
	pods := make([]pod, c.pods)
	var q simQueue
	for i := range pods {
		// Processes start over a second or two: 500 of them on 2 CPUs.
		heap.Push(&q, simEvent{at: time.Duration(rnd.Float64() * float64(2*time.Second)), pod: i})
	}
	var res simResult
	bucket, last := c.rate, time.Duration(0)
	exit := func(p *pod, i int, at time.Duration) {
		if p.hasToken && at < p.expiry {
			res.exitsValid++
		} else {
			res.exitsNone++
		}
		// The next process finds the token file of this one, expired: a lost token (adopt).
		lost := p.hasToken
		p.gen++
		p.hasToken = false
		p.prev = 0
		p.fails, p.cong, p.refused = 0, congestion{}, false
		if lost {
			p.fails = throttledFailures
		}
		delay := min(10*time.Second<<p.restarts, 5*time.Minute)
		p.restarts++
		heap.Push(&q, simEvent{at: at + delay, pod: i, gen: p.gen})
		pods[i].started = at + delay
	}
	for q.Len() > 0 {
		e := heap.Pop(&q).(simEvent)
		if e.at > c.run {
			break
		}
		p := &pods[e.pod]
		if e.gen != p.gen {
			continue
		}
		now := e.at
		if p.started == 0 && !p.gotFirst && p.prev == 0 && !p.hasToken {
			p.started = now
		}
		if p.hasToken && now >= p.expiry { // a retry scheduled past expiry: the loop expires
			exit(p, e.pod, p.expiry)
			continue
		}
		res.requests++
		res.arrivals = append(res.arrivals, now)
		if c.rate > 0 {
			bucket = min(c.rate, bucket+c.rate*(now-last).Seconds())
			last = now
		}
		if c.rate == 0 || bucket >= 1 {
			bucket--
			res.issued++
			res.issuedAt = append(res.issuedAt, now)
			if !p.gotFirst {
				p.gotFirst, p.firstTime = true, now
			}
			if p.hasToken {
				p.cong = p.cong.after(p.refused)
			} else {
				p.cong = congestion{on: p.fails >= throttledFailures}
			}
			p.hasToken, p.expiry, p.prev, p.refused = true, now+c.lifetime, 0, false
			heap.Push(&q, simEvent{at: now + c.policy.renewAt(c.lifetime, rnd.Float64(), p.cong.on), pod: e.pod, gen: p.gen})
			continue
		}
		res.refused++
		if !p.hasToken {
			p.fails++
			w, ok := firstTokenDefault.firstTokenWait(p.fails, p.prev, c.ra, p.started+c.timeout-now, rnd.Float64())
			if !ok {
				exit(p, e.pod, now)
				continue
			}
			p.prev = w
			heap.Push(&q, simEvent{at: now + w, pod: e.pod, gen: p.gen})
			continue
		}
		res.refusedRenewals++
		p.refused = true
		w, retry := c.policy.retryWait(p.prev, c.ra, p.expiry-now, rnd.Float64(), p.cong.on, true)
		if !retry {
			w = p.expiry - now
		}
		p.prev = w
		heap.Push(&q, simEvent{at: min(now+w, p.expiry), pod: e.pod, gen: p.gen})
	}
	for _, p := range pods {
		if p.gotFirst {
			res.firstToken = append(res.firstToken, p.firstTime)
		} else {
			res.noToken++
		}
	}
	slices.Sort(res.firstToken)
	return res
}

// ratioBy returns requests per token issued from the start to t.
func (r simResult) ratioBy(t time.Duration) float64 {
	before := func(d []time.Duration) int {
		n, _ := slices.BinarySearch(d, t)
		return n
	}
	return float64(before(r.arrivals)) / float64(max(before(r.issuedAt), 1))
}

// percentile returns the p-th percentile (0 to 100) of sorted, nearest rank.
func percentile[T any](sorted []T, p float64) T {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// spread returns the coefficient of variation of arrivals per second in [from, to) divided by that of
// random (Poisson) arrivals at the same mean rate, 1/sqrt(mean): 1 for arrivals as even as chance
// makes them, more for waves.
func spread(arrivals []time.Duration, from, to time.Duration) float64 {
	n := int((to - from) / time.Second)
	counts := make([]float64, n)
	for _, a := range arrivals {
		if a >= from && a < to {
			counts[int((a-from)/time.Second)]++
		}
	}
	var sum, sq float64
	for _, c := range counts {
		sum += c
	}
	mean := sum / float64(n)
	for _, c := range counts {
		sq += (c - mean) * (c - mean)
	}
	cv := math.Sqrt(sq/float64(n)) / mean
	return cv * math.Sqrt(mean)
}

// measurePolicy is refresh mode's policy as the measure build has it (measure_policy.go), where a
// 60-second token stands for an hour-long one.
func measurePolicy() renewalPolicy {
	p := refreshPolicy
	p.margin, p.floor, p.retryBase, p.retryMax, p.lastAttempt = 0, 250*time.Millisecond, time.Second, 5*time.Second, 2*time.Second
	return p
}

// TestFleetPolicy runs the fleet scenarios on the policy and checks what the issue asks of
// them, over several seeds.
func TestFleetPolicy(t *testing.T) {
	t.Parallel()
	s := time.Second
	for _, tc := range []struct {
		name  string
		c     simConfig
		check func(r simResult) string
	}{
		{"500 pods, 20/s, Retry-After 5", simConfig{pods: 500, rate: 20, ra: 5 * s, lifetime: 60 * s, run: 10 * time.Minute},
			func(r simResult) string {
				p95, mx := percentile(r.firstToken, 95), r.firstToken[len(r.firstToken)-1]
				switch {
				case r.noToken > 0 || r.exitsNone+r.exitsValid > 0:
					return "exits or pods without a token"
				case p95 > 35*s || mx > 45*s:
					return "first token too late"
				case float64(r.refused)/500 > 1.5:
					return "more than 1.5 429s per pod"
				}
				return ""
			}},
		{"500 pods, 5/s, Retry-After 5", simConfig{pods: 500, rate: 5, ra: 5 * s, lifetime: 60 * s, run: time.Hour},
			func(r simResult) string {
				// An hour of 60-second tokens: the rollout's first minutes cost about 4 refusals a pod
				// (the first token's quick retries, which the 20/s case needs), paid off as the
				// renewals, which give way, waste little: about 3 requests per token at 10 minutes, 2
				// at 30, 1.7 at the hour (logged).
				switch {
				case r.exitsValid > 0:
					return "exits with a valid token"
				case r.noToken > 0:
					return "pods without a token"
				case float64(r.requests)/float64(r.issued) > 2:
					return "more than 2 requests per token issued"
				}
				return ""
			}},
		{"100 pods, no limit", simConfig{pods: 100, lifetime: 60 * s, run: 10 * time.Minute},
			func(r simResult) string {
				if sp := spread(r.arrivals, 60*s, 10*time.Minute); sp > 1.5 {
					return fmt.Sprintf("renewal spread %.2f times random arrivals'", sp)
				}
				return ""
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.c.policy, tc.c.timeout = measurePolicy(), defaultTimeout
			for seed := range uint64(5) {
				r := simulate(tc.c, seed)
				p50, p95, mx := time.Duration(0), time.Duration(0), time.Duration(0)
				if len(r.firstToken) > 0 {
					p50, p95, mx = percentile(r.firstToken, 50), percentile(r.firstToken, 95), r.firstToken[len(r.firstToken)-1]
				}
				t.Logf("seed %d: first token p50 %v p95 %v max %v, %d without; %d requests, %d refused (%.2f per pod), %d tokens (%.2f requests each); exits: %d valid, %d without a token; spread %.2f; %d refused renewals",
					seed, p50.Round(time.Millisecond), p95.Round(time.Millisecond), mx.Round(time.Millisecond), r.noToken, r.requests, r.refused,
					float64(r.refused)/float64(tc.c.pods), r.issued, float64(r.requests)/float64(r.issued), r.exitsValid, r.exitsNone,
					spread(r.arrivals, tc.c.lifetime, tc.c.run), r.refusedRenewals)
				if tc.c.run >= 30*time.Minute {
					t.Logf("seed %d: requests per token since the start: %.2f at 6 min, %.2f at 10, %.2f at 30, %.2f at 60", seed,
						r.ratioBy(6*time.Minute), r.ratioBy(10*time.Minute), r.ratioBy(30*time.Minute), r.ratioBy(time.Hour))
				}
				if msg := tc.check(r); msg != "" {
					t.Errorf("seed %d: %s", seed, msg)
				}
			}
		})
	}
}
