package deliver

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// Backoff returns the delay before the next try after tries failed ones:
// exponential (base × 3^(tries-1)), capped at max, with full jitter (a
// uniform draw in [0, delay] given as rnd in [0, 1)).
func Backoff(tries int, base, max time.Duration, rnd float64) time.Duration {
	if tries < 1 {
		tries = 1
	}
	d := float64(base) * math.Pow(3, float64(tries-1))
	if d > float64(max) || math.IsInf(d, 0) {
		d = float64(max)
	}
	return time.Duration(rnd * d)
}

// RetryAfter parses a Retry-After header (seconds or an HTTP date) relative
// to now; ok is false when the header is absent or unreadable.
func RetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		d = 0
	}
	return d, true
}

// Retryable reports whether an HTTP status is worth another attempt:
// 408, 409, 425, 429 and every 5xx. Other statuses are final.
func Retryable(status int) bool {
	switch status {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return status >= 500
}
