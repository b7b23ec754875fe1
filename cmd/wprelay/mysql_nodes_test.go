//go:build integration

package main

// Several sidecars (the real binary) on one MariaDB database: dedupe, the
// JWT replay cache and the work shared across nodes.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wprelay/wprelay/internal/wpstack"
	"github.com/wprelay/wprelay/relay/provider"
)

var (
	mariaOnce sync.Once
	maria     *wpstack.MariaDB
	mariaErr  error
)

// mariaDB returns the MariaDB the mysql tests share (started once, stopped
// after every test) and a fresh database on it for t.
func mariaDB(t *testing.T) (*wpstack.MariaDB, string) {
	t.Helper()
	mariaOnce.Do(func() {
		maria, mariaErr = wpstack.NewMariaDB(wpstack.DBOptions{Logf: t.Logf})
		if mariaErr == nil {
			afterAll = append(afterAll, maria.Stop)
		}
	})
	if mariaErr != nil {
		wpstack.Fail(t, mariaErr)
	}
	name := "wprelay_" + strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name()))
	if len(name) > 64 {
		name = name[:64]
	}
	if err := maria.CreateDatabase(name); err != nil {
		t.Fatal(err)
	}
	return maria, name
}

// queryInt runs a query whose answer is one number.
func queryInt(t *testing.T, m *wpstack.MariaDB, db, q string) int {
	t.Helper()
	rows, err := m.Query(db, q)
	if err != nil || len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("query %q: %v %v", q, rows, err)
	}
	n, err := strconv.Atoi(rows[0][0])
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	return n
}

// mysqlNodes starts n sidecars on database db with cfg plus a mysql store.
func mysqlNodes(t *testing.T, m *wpstack.MariaDB, db string, n int, cfg string) []*sidecar {
	t.Helper()
	store := fmt.Sprintf("store: {kind: mysql, dsn: %q, table_prefix: \"wprelay_\"}\n", m.DSN(db))
	nodes := make([]*sidecar, n)
	for i := range nodes {
		nodes[i] = startSidecar(t, t.TempDir(), cfg+store)
	}
	return nodes
}

// nodeName is the claimed_by value of a running sidecar.
func nodeName(sc *sidecar) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", host, sc.cmd.Process.Pid)
}

// signedStripe is one signed request, ready to be sent to any node.
type signedStripe struct {
	body []byte
	sig  string
}

func newSignedStripe(id string) signedStripe {
	body := stripeEvent(id, "invoice.created")
	return signedStripe{body: body, sig: signStripe(body, stripeSecret, time.Now())}
}

// send posts the request to base and returns the status and the id answered.
func (s signedStripe) send(client *http.Client, base string) (int, string, error) {
	req, _ := http.NewRequest("POST", base+"/hooks/stripe", bytes.NewReader(s.body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", s.sig)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var r struct {
		ID string `json:"id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&r)
	return resp.StatusCode, r.ID, nil
}

// TestE2E_MySQL_ThreeNodes sends events round-robin to three sidecars on
// one database, each fourth one a second time to another node at the same
// moment and each fifth once more later to the third node: every event is
// stored once, every duplicate is answered 200 with the first id, and
// every event is delivered at least once, by all three nodes between
// them. A JWT replayed to another node is refused there.
func TestE2E_MySQL_ThreeNodes(t *testing.T) {
	t.Parallel()
	m, db := mariaDB(t)
	tg := newTarget(t, nil)
	site := fmt.Sprintf("  - {name: site, kind: wordpress, issuer: %q, jwt_secret: %q, secrets: [%q]}\n", siteIssuer, siteJWT, standardSecret)
	cfg := strings.Replace(e2eConfig(tg.URL(), ""), "targets:", site+"targets:", 1)
	nodes := mysqlNodes(t, m, db, 3, cfg)

	const total, clients = 300, 12
	type answer struct {
		status int
		id     string
	}
	var (
		mu      sync.Mutex
		answers = map[string][]answer{} // stripe id → every answer
		next    atomic.Int64
		wg      sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second}
	record := func(sid string, status int, id string, err error) {
		if err != nil {
			t.Errorf("%s: %v", sid, err)
			return
		}
		mu.Lock()
		answers[sid] = append(answers[sid], answer{status, id})
		mu.Unlock()
	}
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				sid := fmt.Sprintf("evt_nodes_%d", i)
				req := newSignedStripe(sid)
				first := nodes[i%3]
				if i%4 == 0 { // the same request to another node at the same moment
					var inner sync.WaitGroup
					for _, n := range []*sidecar{first, nodes[(i+1)%3]} {
						inner.Go(func() {
							status, id, err := req.send(client, n.public)
							record(sid, status, id, err)
						})
					}
					inner.Wait()
				} else {
					status, id, err := req.send(client, first.public)
					record(sid, status, id, err)
				}
				if i%5 == 0 { // once more, later, to the third node
					status, id, err := req.send(client, nodes[(i+2)%3].public)
					record(sid, status, id, err)
				}
			}
		})
	}
	wg.Wait()
	ingest := time.Since(start)

	ids := map[string]string{} // event id → stripe id
	dupAnswers := 0
	for sid, as := range answers {
		created, id := 0, ""
		for _, a := range as {
			switch a.status {
			case 202:
				created++
			case 200:
				dupAnswers++
			default:
				t.Errorf("%s: status %d", sid, a.status)
			}
			if id != "" && a.id != id {
				t.Errorf("%s: answered with ids %s and %s", sid, id, a.id)
			}
			id = a.id
		}
		if created != 1 {
			t.Errorf("%s: %d answers 202 (of %d), want exactly 1", sid, created, len(as))
		}
		ids[id] = sid
	}
	if len(answers) != total {
		t.Fatalf("%d events answered, want %d", len(answers), total)
	}
	stored := queryInt(t, m, db, "SELECT COUNT(*) FROM wprelay_events WHERE source = 'stripe'")
	keys := queryInt(t, m, db, "SELECT COUNT(DISTINCT idempotency_key) FROM wprelay_events WHERE source = 'stripe'")
	if stored != total || keys != total {
		t.Errorf("%d events stored (%d distinct keys), want %d once each", stored, keys, total)
	}

	// Delivered at least once, all of them.
	deadline := time.Now().Add(30 * time.Second)
	var got map[string]int
	for {
		got = tg.delivered()
		missing := 0
		for id := range ids {
			if got[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events not delivered after 30 s", missing, total)
		}
		time.Sleep(100 * time.Millisecond)
	}
	dupDeliveries := 0
	for id, n := range got {
		if ids[id] != "" && n > 1 {
			dupDeliveries += n - 1
		}
	}
	// Which node delivered what: every node took a share of the work.
	byNode := map[string]int{}
	rows, err := m.Query(db, "SELECT claimed_by, COUNT(*) FROM wprelay_deliveries GROUP BY claimed_by")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		n, _ := strconv.Atoi(r[1])
		byNode[r[0]] = n
	}
	var shares []string
	for i, sc := range nodes {
		shares = append(shares, fmt.Sprintf("node %d: %d", i, byNode[nodeName(sc)]))
		if byNode[nodeName(sc)] == 0 {
			t.Errorf("node %d delivered nothing: %v", i, byNode)
		}
	}
	t.Logf("three nodes: %d events (%d requests, %d answered 200 duplicate) ingested in %s; stored once each: %d; "+
		"delivered %d distinct, duplicate deliveries %d; deliveries by node: %s",
		total, total+dupAnswers, dupAnswers, ingest.Round(time.Millisecond), stored, len(got), dupDeliveries, strings.Join(shares, ", "))
	if dupDeliveries > 0 {
		t.Errorf("%d duplicate deliveries with no node dying (leases should keep nodes apart)", dupDeliveries)
	}
	tg.checkAuthentic()

	// A WordPress request (a fresh JWT) replayed as is to another node.
	v, err := provider.New(provider.Options{Kind: "wordpress", Issuer: siteIssuer, JWTSecret: siteJWT})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := v.Key(standardSecret)
	id := "6a1f0c2e-7c4b-4f8e-9d1a-3b2f1e0d9c8b"
	body := []byte(fmt.Sprintf(`{"event_type":"post.published","object_ref":"post:42","idempotency_key":%q,"occurred_at":"2026-11-28T10:00:00Z","data":{}}`, id))
	r := &provider.Request{Method: "POST", Header: http.Header{"Webhook-Id": {id}}, Body: body, Now: time.Now()}
	if err := v.(provider.Signer).Sign(r, key, ""); err != nil {
		t.Fatal(err)
	}
	h := map[string]string{}
	for k := range r.Header {
		h[k] = r.Header.Get(k)
	}
	wantStatus(t, "signed request to node 0", post(t, nodes[0].public+"/hooks/site", body, h), 202, "")
	wantStatus(t, "the same request replayed to node 1", post(t, nodes[1].public+"/hooks/site", body, h), 401, "replayed")
}
