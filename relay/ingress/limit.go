package ingress

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits rate-limits requests per source and per (source, client IP).
// Zero rates are off.
type Limits struct {
	SourceRate float64 // requests/s per source
	IPRate     float64 // requests/s per client IP, per source
	// TrustedProxies are the peers whose X-Forwarded-For is believed; the
	// client is the rightmost address in it that is not itself trusted.
	TrustedProxies []netip.Prefix

	mu      sync.Mutex
	sources map[string]*rate.Limiter
	ips     map[ipKey]*ipLimiter
}

type ipKey struct {
	source string
	ip     netip.Addr
}

type ipLimiter struct {
	lim  *rate.Limiter
	seen time.Time
}

// maxTrackedIPs bounds the per-IP table; idle entries are swept past it.
const maxTrackedIPs = 50_000

// allow reports whether a request may go on, or how long the client should
// wait before retrying.
func (l *Limits) allow(source string, ip netip.Addr, now time.Time) (time.Duration, bool) {
	if l == nil || (l.SourceRate <= 0 && l.IPRate <= 0) {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.SourceRate > 0 {
		if l.sources == nil {
			l.sources = map[string]*rate.Limiter{}
		}
		lim := l.sources[source]
		if lim == nil {
			lim = rate.NewLimiter(rate.Limit(l.SourceRate), burst(l.SourceRate))
			l.sources[source] = lim
		}
		if d, ok := take(lim, now); !ok {
			return d, false
		}
	}
	if l.IPRate > 0 && ip.IsValid() {
		if l.ips == nil {
			l.ips = map[ipKey]*ipLimiter{}
		}
		k := ipKey{source, ip}
		e := l.ips[k]
		if e == nil {
			if len(l.ips) >= maxTrackedIPs {
				l.sweep(now)
			}
			e = &ipLimiter{lim: rate.NewLimiter(rate.Limit(l.IPRate), burst(l.IPRate))}
			l.ips[k] = e
		}
		e.seen = now
		if d, ok := take(e.lim, now); !ok {
			return d, false
		}
	}
	return 0, true
}

// sweep drops per-IP limiters idle for a minute (they are full again by then
// at any sane rate).
func (l *Limits) sweep(now time.Time) {
	for k, e := range l.ips {
		if now.Sub(e.seen) > time.Minute {
			delete(l.ips, k)
		}
	}
}

func burst(r float64) int { return max(1, int(math.Ceil(r))) }

func take(lim *rate.Limiter, now time.Time) (time.Duration, bool) {
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Second, false
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// clientIP is the peer's address, or, when the peer is a trusted proxy, the
// rightmost untrusted address of X-Forwarded-For.
func (l *Limits) clientIP(r *http.Request) netip.Addr {
	peer := addrOf(r.RemoteAddr)
	if l == nil || len(l.TrustedProxies) == 0 || !contains(l.TrustedProxies, peer) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		a = a.Unmap()
		if !contains(l.TrustedProxies, a) {
			return a
		}
	}
	return peer
}

func addrOf(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
