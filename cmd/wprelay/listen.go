package main

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/wprelay/wprelay/relay/config"
)

// listen binds the public listener (with TLS when configured) and the
// admin listener, before anything is created: a port in use or a bad
// certificate leaves no store file and no secrets behind.
func (m *Main) listen(cfg config.Config) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w (is another wprelay running? choose another port with listen or --listen)", cfg.Listen, err)
	}
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls: %w (check tls.cert_file and tls.key_file)", err)
		}
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}})
	}
	if cfg.Admin.Listen != "" && cfg.Admin.Listen != "off" {
		aln, err := net.Listen("tcp", cfg.Admin.Listen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen %s (admin): %w (choose another port with admin.listen or --admin-listen)", cfg.Admin.Listen, err)
		}
		m.adminLn = aln
	}
	m.publicLn = ln
	return nil
}

// closeListeners closes what listen bound, when Start fails after it.
func (m *Main) closeListeners() {
	if m.publicLn != nil {
		m.publicLn.Close()
	}
	if m.adminLn != nil {
		m.adminLn.Close()
	}
}
