package main

// The CLI's answers say what happened and what to do next.

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/config"
)

func TestCLI_AdminURLAtThePublicListener(t *testing.T) {
	e := newAdminEnv(t)
	for _, args := range [][]string{{"events", "list"}, {"stats"}, {"dlq", "list"}} {
		_, stderr, code := runCLI(append(args, "--admin-url", e.public, "--token-file", e.tokenFile)...)
		if code != 2 || !strings.Contains(stderr, "--admin-url "+e.public+" is the public webhook listener, not the admin API") ||
			!strings.Contains(stderr, "http://127.0.0.1:8081") || strings.Contains(stderr, "webhooks go to") {
			t.Errorf("%v: exit %d\n%s", args, code, stderr)
		}
	}
	_, stderr, code := runCLI("healthcheck", "--url", e.public+"/readyz")
	if code != 1 || !strings.Contains(stderr, "public webhook listener") {
		t.Errorf("healthcheck at the public listener: exit %d\n%s", code, stderr)
	}
}

// scriptedPruner deletes what its script says, one batch per call, then
// cancels the loop.
type scriptedPruner struct {
	batches []int
	cancel  func()
}

func (p *scriptedPruner) Prune(ctx context.Context, now, before time.Time, max int) (int, error) {
	if len(p.batches) == 0 {
		p.cancel()
		return 0, nil
	}
	n := p.batches[0]
	p.batches = p.batches[1:]
	return n, nil
}

// Retention says what it removed; durations in JSON logs read as
// durations ("10s"), not nanoseconds.
func TestLog_PruneCountsAndDurations(t *testing.T) {
	var logs bytes.Buffer
	logger := newLogger(config.Log{Format: "json", Level: "info"}, &logs)
	ctx, cancel := context.WithCancel(t.Context())
	m := &Main{Config: config.Default(), Logger: logger, Store: &openedStore{Pruner: &scriptedPruner{batches: []int{500, 120}, cancel: cancel}}}
	m.prune(ctx)
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(logs.Bytes()), &line); err != nil {
		t.Fatalf("%v: %s", err, logs.String())
	}
	if line["msg"] != "retention: pruned expired records" || line["records"] != 620.0 {
		t.Fatalf("prune log: %s", logs.String())
	}
	if took, ok := line["took"].(string); !ok || !strings.HasSuffix(took, "s") {
		t.Fatalf("took = %#v, want a duration", line["took"])
	}

	logs.Reset()
	logger.Info("shutting down", slog.Duration(relay.LogKeyGrace, 10*time.Second))
	if !strings.Contains(logs.String(), `"grace":"10s"`) {
		t.Fatalf("grace logged as %s", logs.String())
	}
}
