package deliver

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	cases := []struct {
		tries int
		rnd   float64
		want  time.Duration
	}{
		{1, 0.999999999, time.Second},
		{2, 0.999999999, 3 * time.Second},
		{3, 0.999999999, 9 * time.Second},
		{3, 0.5, 4500 * time.Millisecond},
		{3, 0, 0},
		{20, 0.999999999, time.Hour}, // capped
		{200, 1, time.Hour},          // no overflow
		{0, 0.5, 500 * time.Millisecond},
	}
	for _, c := range cases {
		got := Backoff(c.tries, time.Second, time.Hour, c.rnd)
		if d := got - c.want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("Backoff(%d, rnd %v) = %v, want %v", c.tries, c.rnd, got, c.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
	}
	for _, c := range cases {
		got, ok := RetryAfter(c.v, now)
		if got != c.want || ok != c.ok {
			t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", c.v, got, ok, c.want, c.ok)
		}
	}
}

func TestRetryable(t *testing.T) {
	for status, want := range map[int]bool{
		200: false, 400: false, 401: false, 404: false, 410: false, 422: false,
		408: true, 409: true, 425: true, 429: true, 500: true, 502: true, 503: true, 504: true,
	} {
		if got := Retryable(status); got != want {
			t.Errorf("Retryable(%d) = %v, want %v", status, got, want)
		}
	}
}
