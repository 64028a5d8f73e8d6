package main

import (
	"math"
	"testing"
	"time"
)

// TestSpread: arrivals as even as can be spread less than random ones (ratio 0), and a wave (all in
// one second of ten) more.
func TestSpread(t *testing.T) {
	var even, wave []time.Duration
	for i := range 100 {
		even = append(even, time.Duration(i)*100*time.Millisecond)
		wave = append(wave, 3*time.Second+time.Duration(i)*time.Millisecond)
	}
	if r, mean := spread(even, 0, 10*time.Second); r != 0 || mean != 10 {
		t.Errorf("even arrivals: spread %v, mean %v; want 0, 10", r, mean)
	}
	// One second holds 100, nine hold 0: mean 10, standard deviation 30, CV 3, times sqrt(10).
	if r, _ := spread(wave, 0, 10*time.Second); math.Abs(r-3*math.Sqrt(10)) > 1e-9 {
		t.Errorf("a wave: spread %v, want %v", r, 3*math.Sqrt(10))
	}
	if p := pct([]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 95); p != 10 {
		t.Errorf("p95 of 1..10 = %d, want 10", p)
	}
	if p := pct([]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 50); p != 5 {
		t.Errorf("p50 of 1..10 = %d, want 5", p)
	}
}
