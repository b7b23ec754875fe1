package deliver

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"syscall"
	"time"
)

// ErrBlockedAddress is returned when a target resolves to an address it
// may not reach: link-local or a cloud metadata address (never), or, for an
// http target without allow_private, loopback, private, CGNAT or NAT64.
var ErrBlockedAddress = errors.New("address not allowed")

var (
	cgnat = netip.MustParsePrefix("100.64.0.0/10")
	// nat64 addresses reach the IPv4 address in their last 4 bytes.
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	// metadata are the cloud metadata services outside link-local
	// (169.254.169.254 is in it): AWS over IPv6, Alibaba, Oracle.
	metadata = []netip.Addr{netip.MustParseAddr("fd00:ec2::254"), netip.MustParseAddr("100.100.100.200"), netip.MustParseAddr("192.0.0.192")}
)

// forbidden reports whether no target may reach a, whatever its kind or
// allow_private: link-local addresses (where metadata services answer)
// and the metadata addresses, also through NAT64.
func forbidden(a netip.Addr) bool {
	a = a.Unmap()
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	return a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || slices.Contains(metadata, a)
}

// blocked reports whether a is an address an http target without
// allow_private may not reach.
func blocked(a netip.Addr) bool {
	a = a.Unmap()
	return forbidden(a) || a.IsLoopback() || a.IsPrivate() || a.IsUnspecified() || a.IsMulticast() ||
		a.IsInterfaceLocalMulticast() || cgnat.Contains(a) || nat64.Contains(a) || nat64Local.Contains(a)
}

// transport returns the HTTP transport of a target. The address check runs
// at dial time, after DNS resolution, so a name that rebinds to a private
// address is refused too; allowPrivate (allow_private, and wordpress
// targets) lifts it but for the forbidden addresses.
func transport(allowPrivate bool, conns int) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	d.Control = func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		switch {
		case err != nil:
			return fmt.Errorf("%w: %s", ErrBlockedAddress, address)
		case forbidden(ap.Addr()):
			return fmt.Errorf("%w: %s is link-local or a cloud metadata address, which no target may reach", ErrBlockedAddress, ap.Addr())
		case !allowPrivate && blocked(ap.Addr()):
			return fmt.Errorf("%w: %s is loopback, private, CGNAT or NAT64 (set allow_private: true on the target to allow it)", ErrBlockedAddress, ap.Addr())
		}
		return nil
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
