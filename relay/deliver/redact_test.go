package deliver

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A secret in a target URL's query (url: "…?api_key=${KEY}") reaches
// neither the log (go-retryablehttp logs the URL of a failed request) nor
// the attempt records of a target that cannot be reached.
func TestDispatcher_SecretInURLNotLogged(t *testing.T) {
	const key = "sk-query-secret-0451"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connection refused from now on
	var logs lockedBuffer
	db := mustDB(t)
	d := New(db, []Target{{Name: "crm", Kind: "http", URL: "http://" + addr + "/in?api_key=" + key, AllowPrivate: true,
		MaxAttempts: 1, Timeout: time.Second, Redact: []string{key}}}, slog.New(slog.NewJSONHandler(&logs, nil)))
	run(t, d)
	id := add(t, db, incoming("site", "1", time.Now(), "crm"))[0]
	d.Notify()
	del := waitDelivery(t, db, id, "crm", relay.DeliveryDead)
	out := logs.String()
	if !strings.Contains(out, "request failed") || !strings.Contains(out, `"msg":"deliver"`) {
		t.Fatalf("the failed attempt was not logged: %s", out)
	}
	if strings.Contains(out, key) || strings.Contains(del.LastError+del.Reason, key) {
		t.Fatalf("the key was recorded:\n%s\n%+v", out, del)
	}
}
