//go:build integration

package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestE2E_MySQL_Failover_Kill9 runs three sidecars on one database behind
// a client that, like a load balancer or a provider's retry, sends an
// event to the next node when one does not answer. Mid-burst, with
// deliveries in flight on every node (the target answers slowly), node 0
// gets SIGKILL. The two others keep ingesting, deliver what node 0 had
// acknowledged, and take over the deliveries it had leased once the lease
// runs out. Every acknowledged event is delivered: none lost. It reports
// acknowledged / delivered / lost / duplicates, and how many leases were
// taken over.
func TestE2E_MySQL_Failover_Kill9(t *testing.T) {
	t.Parallel()
	m, db := mariaDB(t)
	tg := newTarget(t, func(int, string) answer { return answer{status: 200, delay: 250 * time.Millisecond} })
	// timeout 1s: the dispatcher leases for 3×1s + 30s = 33 s.
	cfg := strings.Replace(e2eConfig(tg.URL(), ""), "timeout: 2s", "timeout: 1s", 1)
	nodes := mysqlNodes(t, m, db, 3, cfg)
	dead := nodeName(nodes[0])

	const total, clients, killAfter = 900, 24, 300
	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		nAcked  atomic.Int64
		next    atomic.Int64
		killed  = make(chan struct{})
		once    sync.Once
		killAt  time.Time
		leased  []string // event ids whose delivery node 0 held
		resent  atomic.Int64
		failedN atomic.Int64
	)
	kill := func() {
		once.Do(func() {
			nodes[0].kill9()
			killAt = time.Now()
			rows, err := m.Query(db, fmt.Sprintf("SELECT event_id FROM wprelay_deliveries WHERE status = 'in_flight' AND claimed_by = '%s'", dead))
			if err != nil {
				t.Error(err)
			}
			for _, r := range rows {
				leased = append(leased, r[0])
			}
			close(killed)
		})
	}
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				req := newSignedStripe(fmt.Sprintf("evt_failover_%d", i))
				for try := 0; ; try++ {
					if try == 6 {
						failedN.Add(1)
						break
					}
					n := nodes[(i+try)%3]
					status, id, err := req.send(client, n.public)
					if err != nil || status >= 500 {
						resent.Add(1)
						continue // the next node
					}
					if status != 200 && status != 202 {
						t.Errorf("status %d", status)
						break
					}
					mu.Lock()
					acked[id] = true
					mu.Unlock()
					if status == 202 && nAcked.Add(1) == killAfter {
						kill()
					}
					break
				}
			}
		})
	}
	wg.Wait()
	kill()
	ingestDone := time.Since(killAt)
	if failedN.Load() > 0 {
		t.Errorf("%d events found no node to take them", failedN.Load())
	}
	if len(leased) == 0 {
		t.Fatalf("node 0 held no leases when it was killed: the test proves nothing")
	}

	// Everything acknowledged gets delivered; node 0's leases after the
	// lease (33 s) at most, plus the dispatchers' wake-up.
	deadline := killAt.Add(60 * time.Second)
	lost := 0
	for {
		got := tg.delivered()
		lost = 0
		mu.Lock()
		for id := range acked {
			if got[id] == 0 {
				lost++
			}
		}
		mu.Unlock()
		// Delivered, and recorded as such: the target may have got node
		// 0's last attempts before it died; they count once taken over.
		if lost == 0 && queryInt(t, m, db, "SELECT COUNT(*) FROM wprelay_deliveries WHERE status <> 'succeeded'") == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	recovered := time.Since(killAt)
	got := tg.delivered()
	dups := 0
	for _, n := range got {
		if n > 1 {
			dups += n - 1
		}
	}
	// The leases node 0 held were taken over, and not before they ran out.
	tookOver, early := 0, 0
	tg.mu.Lock()
	for _, g := range tg.got {
		for _, id := range leased {
			if g.EventID == id && g.At.After(killAt) {
				tookOver++
				if g.At.Before(killAt.Add(25 * time.Second)) {
					early++
				}
			}
		}
	}
	tg.mu.Unlock()
	stillDead := queryInt(t, m, db, fmt.Sprintf("SELECT COUNT(*) FROM wprelay_deliveries WHERE claimed_by = '%s' AND status <> 'succeeded'", dead))
	rows, err := m.Query(db, "SELECT status, COUNT(*) FROM wprelay_deliveries GROUP BY status")
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]int{}
	for _, r := range rows {
		statuses[r[0]], _ = strconv.Atoi(r[1])
	}
	t.Logf("failover: acknowledged %d, delivered %d distinct, lost %d, duplicate deliveries %d; "+
		"node 0 held %d leases at the kill, %d taken over after the lease (all delivered %s after the kill; ingest went on %s); "+
		"requests sent again to another node %d; delivery statuses %v",
		len(acked), len(got), lost, dups, len(leased), tookOver, recovered.Round(100*time.Millisecond), ingestDone.Round(100*time.Millisecond), resent.Load(), statuses)
	if lost != 0 {
		t.Fatalf("%d acknowledged events were never delivered", lost)
	}
	if len(acked) != total {
		t.Errorf("%d events acknowledged, want all %d (the surviving nodes take the rest)", len(acked), total)
	}
	if tookOver != len(leased) || early > 0 {
		t.Errorf("of node 0's %d leases, %d were delivered again after the kill, %d before the lease (33 s) ran out", len(leased), tookOver, early)
	}
	if stillDead != 0 || statuses["succeeded"] != total {
		t.Errorf("%d deliveries still held by the dead node; statuses %v", stillDead, statuses)
	}
	tg.checkAuthentic()
}
