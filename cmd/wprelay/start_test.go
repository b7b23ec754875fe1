package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay/config"
	"github.com/wprelay/wprelay/store"
)

// A Start that fails part way leaves nothing open: the store file can be
// opened again at once, and both listeners' ports are free again.
func TestMain_StartFailureClosesWhatItOpened(t *testing.T) {
	for name, broken := range map[string]func(*config.Config){
		"source": func(c *config.Config) { c.Sources[0].Kind = "no-such-kind" },
		"target": func(c *config.Config) { c.Targets[0].Template = "{{" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := config.Default()
			cfg.DataDir = t.TempDir()
			cfg.Admin.Token = "start-test-admin-token-0123456789"
			cfg.Listen, cfg.Admin.Listen = freeLoopback(t), freeLoopback(t)
			cfg.Sources = []config.Source{{Name: "gh", Kind: "github", Secrets: []config.Secret{"start-test-secret-0123"}}}
			cfg.Targets = []config.Target{{Name: "crm", Kind: "http", URL: "http://127.0.0.1:9/in", AllowPrivate: true}}
			broken(&cfg)
			m := &Main{Config: cfg, Logger: slog.New(slog.DiscardHandler)}
			if err := m.Start(context.Background()); err == nil || !strings.Contains(err.Error(), map[string]string{"source": "source gh", "target": "target crm"}[name]) {
				t.Fatalf("Start: %v", err)
			}
			db, err := store.Open(filepath.Join(cfg.DataDir, "wprelay.db"), store.Options{LockTimeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatalf("the store is still open: %v", err)
			}
			db.Close()
			for _, addr := range []string{cfg.Listen, cfg.Admin.Listen} {
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					t.Fatalf("a listener is still open: %v", err)
				}
				ln.Close()
			}
		})
	}
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
