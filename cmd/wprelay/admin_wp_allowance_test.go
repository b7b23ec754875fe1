//go:build integration

package main

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// The admin page calls WPRELAY_ADMIN_URL with wp_safe_remote_request(): the
// plugin's allowance lets exactly that scheme, host and port through, as
// it does for WPRELAY_SIDECAR_URL, and nothing next to it.
func TestWP_HTTPAllowance_AdminURL(t *testing.T) {
	site := sharedSite(t)
	var hits atomic.Int32
	serve := func(addr string) string {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Write([]byte("ok"))
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	sidecar := serve(freeHostAddr(t, sidecarHost))
	adminSiteHost := serve("127.0.0.1:0")  // the site's own host, another port
	adminOtherHost := serve("127.0.0.4:0") // a loopback host of its own
	otherPort := serve("127.0.0.1:0")
	port := adminOtherHost[strings.LastIndexByte(adminOtherHost, ':')+1:]
	sameHostOtherPort := serve("127.0.0.4:0")
	otherHostSamePort := serve("127.0.0.5:" + port)

	// probe requests each URL from one PHP process and returns, per URL,
	// "HTTP <code>" or "refused: <why>".
	probe := func(urls []string, filters bool) []string {
		code := ""
		if !filters {
			code = `remove_all_filters( 'http_request_host_is_external' ); remove_all_filters( 'http_allowed_safe_ports' );`
		}
		for _, u := range urls {
			code += fmt.Sprintf(`$r = wp_safe_remote_get( %q, array( 'timeout' => 3 ) );
echo ( is_wp_error( $r ) ? 'refused: ' . $r->get_error_message() : 'HTTP ' . wp_remote_retrieve_response_code( $r ) ), "\n";`, u)
		}
		return strings.Split(strings.TrimSpace(site.PHP(t, code)), "\n")
	}
	for _, admin := range []string{adminSiteHost, adminOtherHost} {
		site.SetConstants(t, wpConstants("http://"+sidecar, "http://"+admin))
		for _, group := range []struct {
			filters bool
			cases   [][2]string // URL, want
		}{
			{true, [][2]string{
				{"http://" + admin + "/readyz", "HTTP 200"},
				{"https://" + admin + "/readyz", "refused"},
				{"http://" + sidecar + "/healthz", "HTTP 200"},
				{"http://" + otherPort + "/", "refused"},
				{"http://" + sameHostOtherPort + "/", "refused"},
				{"http://" + otherHostSamePort + "/", "refused"},
			}},
			{false, [][2]string{{"http://" + admin + "/readyz", "refused"}}},
		} {
			var urls []string
			for _, c := range group.cases {
				urls = append(urls, c[0])
			}
			before := hits.Load()
			got := probe(urls, group.filters)
			served := 0
			for i, c := range group.cases {
				if i >= len(got) || !strings.HasPrefix(got[i], c[1]) {
					t.Errorf("admin %s: %s (plugin filters %v): %q, want %s", admin, c[0], group.filters, got, c[1])
				}
				if c[1] != "refused" {
					served++
				}
			}
			if n := int(hits.Load() - before); n != served {
				t.Errorf("admin %s: the servers got %d requests, want %d (refused URLs must not be called)", admin, n, served)
			}
		}
	}
}
