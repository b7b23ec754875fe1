package deliver

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrBlockedAddress is returned when an http target resolves to an address
// it may not reach (loopback, private, link-local, metadata) and the target
// does not set allow_private.
var ErrBlockedAddress = errors.New("address not allowed")

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// blocked reports whether a is an address an http target may not reach.
func blocked(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsUnspecified() || a.IsMulticast() || a.IsInterfaceLocalMulticast() || cgnat.Contains(a)
}

// transport returns the HTTP transport of a target. The address check runs
// at dial time, after DNS resolution, so a name that rebinds to a private
// address is refused too.
func transport(allowPrivate bool, conns int) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrBlockedAddress, address)
			}
			if blocked(ap.Addr()) {
				return fmt.Errorf("%w: %s is loopback, private or link-local (set allow_private: true on the target to allow it)", ErrBlockedAddress, ap.Addr())
			}
			return nil
		}
	}
	return &http.Transport{
		Proxy:                 nil, // a proxy would bypass the address check
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          conns * 2,
		MaxIdleConnsPerHost:   conns * 2,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
