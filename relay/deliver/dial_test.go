package deliver

import (
	"errors"
	"net/netip"
	"testing"
)

func TestDial_AddressChecks(t *testing.T) {
	for _, tc := range []struct {
		addr                   string
		forbidden, blockedHTTP bool
	}{
		{"169.254.169.254", true, true}, // instance metadata
		{"169.254.10.1", true, true},
		{"fe80::1", true, true},
		{"fd00:ec2::254", true, true},   // AWS metadata over IPv6
		{"100.100.100.200", true, true}, // Alibaba metadata
		{"64:ff9b::a9fe:a9fe", true, true},
		{"::ffff:169.254.169.254", true, true},
		{"64:ff9b::808:808", false, true}, // NAT64 to a public address
		{"64:ff9b:1::1", false, true},
		{"127.0.0.1", false, true},
		{"10.0.0.5", false, true},
		{"100.64.1.1", false, true},
		{"8.8.8.8", false, false},
		{"2606:4700::1111", false, false},
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := forbidden(a); got != tc.forbidden {
			t.Errorf("forbidden(%s) = %v, want %v", a, got, tc.forbidden)
		}
		if got := blocked(a); got != tc.blockedHTTP {
			t.Errorf("blocked(%s) = %v, want %v", a, got, tc.blockedHTTP)
		}
	}
}

// Every target kind refuses link-local and metadata addresses: the dial
// check holds with allow_private (and for wordpress targets, which get it).
func TestTransport_RefusesMetadataWhateverTheKind(t *testing.T) {
	for _, allowPrivate := range []bool{false, true} {
		tr := transport(allowPrivate, 1)
		_, err := tr.DialContext(t.Context(), "tcp", "169.254.169.254:80")
		if !errors.Is(err, ErrBlockedAddress) {
			t.Errorf("allowPrivate=%v: dial metadata: %v, want ErrBlockedAddress", allowPrivate, err)
		}
		_, err = tr.DialContext(t.Context(), "tcp", "[64:ff9b::a9fe:a9fe]:80")
		if !errors.Is(err, ErrBlockedAddress) {
			t.Errorf("allowPrivate=%v: dial metadata via NAT64: %v, want ErrBlockedAddress", allowPrivate, err)
		}
	}
}
