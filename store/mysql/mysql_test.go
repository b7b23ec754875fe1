package mysql

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wprelay/wprelay/internal/seal"
	"github.com/wprelay/wprelay/internal/wpstack"
	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/relaytest"
)

// DSNEnv, when set, runs the tests against that database (e.g. a MySQL 8)
// instead of a MariaDB started for them. Each test uses its own table
// prefix and drops its tables at the end.
const DSNEnv = "WPRELAY_TEST_MYSQL_DSN"

var (
	serverOnce sync.Once
	server     *wpstack.MariaDB
	serverDSN  string
	serverErr  error
	prefixes   atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if server != nil {
		server.Stop()
	}
	os.Exit(code)
}

// testDSN returns the DSN of the test database, starting MariaDB once.
func testDSN(tb testing.TB) string {
	tb.Helper()
	serverOnce.Do(func() {
		if dsn := os.Getenv(DSNEnv); dsn != "" {
			serverDSN = dsn
			return
		}
		server, serverErr = wpstack.NewMariaDB(wpstack.DBOptions{})
		if serverErr == nil {
			serverErr = server.CreateDatabase("wprelay_test")
			serverDSN = server.DSN("wprelay_test")
		}
	})
	if serverErr != nil {
		wpstack.Fail(tb, serverErr)
	}
	return serverDSN
}

// options returns Options for a fresh set of tables.
func options(tb testing.TB) Options {
	tb.Helper()
	return Options{DSN: testDSN(tb), TablePrefix: fmt.Sprintf("t%d_", prefixes.Add(1)), Logger: slog.New(slog.DiscardHandler)}
}

// mustOpen opens a store on o's tables, closed and dropped when tb ends.
func mustOpen(tb testing.TB, o Options) *DB {
	tb.Helper()
	db, err := Open(context.Background(), o)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// dropTables removes the tables of prefix when tb ends.
func dropTables(tb testing.TB, o Options) {
	tb.Cleanup(func() {
		db, _, _, err := connect(context.Background(), o)
		if err != nil {
			return
		}
		defer db.Close()
		for _, t := range newTables(o.TablePrefix).all() {
			db.Exec("DROP TABLE IF EXISTS " + t)
		}
	})
}

func TestStore(t *testing.T) {
	relaytest.TestStore(t, func(t *testing.T) relaytest.Store {
		o := options(t)
		dropTables(t, o)
		return mustOpen(t, o)
	})
}

// incoming returns an Incoming for key with one pending delivery to each
// target, due at at.
func incoming(key string, at time.Time, targets ...string) relay.Incoming {
	in := relay.Incoming{
		Event: relay.Event{Source: "stripe", Tenant: "acme", Type: "invoice.created", IdempotencyKey: key,
			ReceivedAt: at, Envelope: []byte(fmt.Sprintf(`{"key":%q}`, key))},
		Raw:        &relay.Raw{Method: "POST", Path: "/hooks/stripe", Body: []byte(fmt.Sprintf(`{"id":%q}`, key))},
		BodyHash:   sha256.Sum256([]byte(key)),
		KeyExpires: at.Add(time.Hour),
	}
	for _, tg := range targets {
		in.Event.Deliveries = append(in.Event.Deliveries, relay.Delivery{Target: tg, Status: relay.DeliveryPending, NextAt: at})
	}
	return in
}

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// twoNodes opens two stores on the same tables, as two sidecars would.
func twoNodes(t *testing.T) (*DB, *DB, Options) {
	o := options(t)
	dropTables(t, o)
	a, b := o, o
	a.Node, b.Node = "node-a", "node-b"
	return mustOpen(t, a), mustOpen(t, b), o
}

// TestDB_Enqueue_DedupeAcrossNodes sends every key to both nodes at once:
// each key is stored once, and every other answer is a duplicate of the
// first id (or a conflict, for another body).
func TestDB_Enqueue_DedupeAcrossNodes(t *testing.T) {
	t.Parallel()
	a, b, _ := twoNodes(t)
	ctx := t.Context()
	const keys, rounds = 40, 4
	type answer struct {
		key string
		out relay.Outcome
	}
	var (
		mu  sync.Mutex
		all []answer
		wg  sync.WaitGroup
	)
	for i := range keys * rounds {
		node := []*DB{a, b}[i%2]
		wg.Go(func() {
			key := fmt.Sprintf("k%02d", i%keys)
			outs, err := node.Enqueue(ctx, &relay.Batch{Events: []relay.Incoming{incoming(key, t0, "wp")}})
			if err != nil {
				t.Errorf("Enqueue %s: %v", key, err)
				return
			}
			mu.Lock()
			all = append(all, answer{key, outs[0]})
			mu.Unlock()
		})
	}
	wg.Wait()
	ids, news := map[string]string{}, map[string]int{}
	for _, s := range all {
		if s.out.Conflict {
			t.Errorf("%s: conflict", s.key)
		}
		if id, ok := ids[s.key]; ok && id != s.out.ID {
			t.Errorf("%s: ids %s and %s", s.key, id, s.out.ID)
		}
		ids[s.key] = s.out.ID
		if !s.out.Duplicate {
			news[s.key]++
		}
	}
	for k := range ids {
		if news[k] != 1 {
			t.Errorf("%s stored %d times", k, news[k])
		}
	}
	if n, err := b.Pending(ctx); err != nil || n != keys {
		t.Errorf("Pending = %d, %v; want %d", n, err, keys)
	}
	// Another body under a key stored by the other node: a conflict.
	other := incoming("k00", t0, "wp")
	other.BodyHash = sha256.Sum256([]byte("another body"))
	outs, err := a.Enqueue(ctx, &relay.Batch{Events: []relay.Incoming{other}})
	if err != nil || !outs[0].Conflict || outs[0].ID != ids["k00"] {
		t.Errorf("another body = %+v, %v; want a conflict with %s", outs, err, ids["k00"])
	}
}

func TestDB_Enqueue_NonceAcrossNodes(t *testing.T) {
	t.Parallel()
	a, b, _ := twoNodes(t)
	batch := func(key string) *relay.Batch {
		return &relay.Batch{Nonce: "jti-42", NonceExpires: t0.Add(5 * time.Minute), Events: []relay.Incoming{incoming(key, t0, "wp")}}
	}
	if _, err := a.Enqueue(t.Context(), batch("k1")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Enqueue(t.Context(), batch("k2")); !errors.Is(err, relay.ErrReplayed) {
		t.Fatalf("the same jti on the other node: err = %v, want relay.ErrReplayed", err)
	}
}

// TestDB_Claim_DisjointAcrossNodes claims from two nodes at once until
// everything is claimed: no delivery is handed out twice.
func TestDB_Claim_DisjointAcrossNodes(t *testing.T) {
	t.Parallel()
	a, b, _ := twoNodes(t)
	ctx := t.Context()
	const total = 300
	var ins []relay.Incoming
	for i := range total {
		ins = append(ins, incoming(fmt.Sprintf("k%03d", i), t0.Add(time.Duration(i)*time.Millisecond), "wp"))
	}
	if _, err := a.Enqueue(ctx, &relay.Batch{Events: ins}); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen = map[string]string{}
		wg   sync.WaitGroup
	)
	for w := range 6 {
		node := []*DB{a, b}[w%2]
		wg.Go(func() {
			for {
				jobs, err := node.Claim(ctx, "wp", t0.Add(time.Minute), 7, time.Minute)
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					if prev, dup := seen[j.EventID]; dup {
						t.Errorf("%s claimed by %s and %s", j.EventID, prev, node.Node())
					}
					seen[j.EventID] = node.Node()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != total {
		t.Fatalf("claimed %d deliveries, want %d", len(seen), total)
	}
	s, err := b.Stats(ctx)
	if err != nil || s.Deliveries[relay.DeliveryInFlight] != total || s.Pending != total {
		t.Errorf("Stats = %+v, %v; want %d in flight", s, err, total)
	}
}

// TestDB_Complete_Fencing: a node whose lease ran out and was taken over
// cannot record its outcome; the new holder can; a late answer nobody
// took over is still recorded.
func TestDB_Complete_Fencing(t *testing.T) {
	t.Parallel()
	a, b, _ := twoNodes(t)
	ctx := t.Context()
	outs, err := a.Enqueue(ctx, &relay.Batch{Events: []relay.Incoming{incoming("k1", t0, "wp"), incoming("k2", t0, "wp")}})
	if err != nil {
		t.Fatal(err)
	}
	id1, id2 := outs[0].ID, outs[1].ID
	if jobs, err := a.Claim(ctx, "wp", t0, 10, 10*time.Second); err != nil || len(jobs) != 2 {
		t.Fatalf("a claims = %d, %v", len(jobs), err)
	}
	// b takes over id1 after the lease ran out.
	jobs, err := b.Claim(ctx, "wp", t0.Add(11*time.Second), 1, 10*time.Second)
	if err != nil || len(jobs) != 1 || jobs[0].EventID != id1 {
		t.Fatalf("b claims = %+v, %v; want %s", jobs, err, id1)
	}
	res := func(id string, at time.Time) relay.Result {
		return relay.Result{EventID: id, Target: "wp", Status: relay.DeliverySucceeded, Attempt: relay.Attempt{At: at, Status: 200}}
	}
	if err := a.Complete(ctx, res(id1, t0.Add(12*time.Second))); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("stale holder's Complete: err = %v, want relay.ErrNotFound", err)
	}
	if err := b.Complete(ctx, res(id1, t0.Add(12*time.Second))); err != nil {
		t.Errorf("new holder's Complete: %v", err)
	}
	if err := b.Complete(ctx, res(id2, t0.Add(12*time.Second))); !errors.Is(err, relay.ErrNotFound) {
		t.Errorf("Complete of a delivery another node holds: err = %v, want relay.ErrNotFound", err)
	}
	// a's lease on id2 ran out too, but nobody claimed it: a's late answer counts.
	if err := a.Complete(ctx, res(id2, t0.Add(13*time.Second))); err != nil {
		t.Errorf("late Complete nobody took over: %v", err)
	}
	for _, id := range []string{id1, id2} {
		e, err := a.Event(ctx, id)
		if err != nil || e.Status != relay.EventDelivered || len(e.Deliveries[0].History) != 1 {
			t.Errorf("event %s = %+v, %v; want delivered with one attempt", id, e, err)
		}
	}
}

// TestDB_GroupCommit_IsolatesFailures commits one group in which one call
// replays a nonce and one fails a statement (an id already stored): both
// fail alone, the others are stored.
func TestDB_GroupCommit_IsolatesFailures(t *testing.T) {
	t.Parallel()
	o := options(t)
	dropTables(t, o)
	db := mustOpen(t, o)
	ctx := t.Context()
	taken := incoming("first", t0, "wp")
	taken.Event.ID = "0194f3c8-0000-7000-8000-000000000001"
	if _, err := db.Enqueue(ctx, &relay.Batch{Nonce: "used", NonceExpires: t0.Add(time.Hour), Events: []relay.Incoming{taken}}); err != nil {
		t.Fatal(err)
	}
	var group []*enqueueOp
	for i := range 20 {
		b := &relay.Batch{Events: []relay.Incoming{incoming(fmt.Sprintf("g%d", i), t0, "wp")}}
		switch i {
		case 5:
			b.Nonce, b.NonceExpires = "used", t0.Add(time.Hour)
		case 9:
			b.Events[0].Event.ID = taken.Event.ID // another key, an id already stored
		}
		preps, err := db.prepare(b)
		if err != nil {
			t.Fatal(err)
		}
		op := &enqueueOp{batch: b, preps: preps}
		if b.Nonce != "" {
			op.nonceHash = hashKey("n", b.Nonce)
			op.token[0] = 1
		}
		group = append(group, op)
	}
	errs := db.commit.commit(group)
	for i, op := range group {
		err := errs[i]
		switch {
		case i == 5 && !errors.Is(err, relay.ErrReplayed):
			t.Errorf("call 5 (replayed nonce): err = %v", err)
		case i == 9 && err == nil:
			t.Errorf("call 9 (id taken): no error")
		case i != 5 && i != 9 && (err != nil || op.outs[0].ID == "" || op.outs[0].Duplicate):
			t.Errorf("call %d: %+v, %v; want stored", i, op.outs, err)
		}
	}
	evs, _, err := db.Events(ctx, relay.EventFilter{}, "", 100)
	if err != nil || len(evs) != 19 {
		t.Errorf("%d events stored, %v; want 19", len(evs), err)
	}
}

// TestDB_GroupCommit_Shares checks that concurrent calls share commits.
func TestDB_GroupCommit_Shares(t *testing.T) {
	t.Parallel()
	o := options(t)
	dropTables(t, o)
	db := mustOpen(t, o)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			if _, err := db.Enqueue(t.Context(), &relay.Batch{Events: []relay.Incoming{incoming(fmt.Sprintf("c%d", i), t0, "wp")}}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	commits, ops := db.CommitStats()
	t.Logf("200 concurrent Enqueue calls: %d commits", commits)
	if ops != 200 || commits >= ops {
		t.Errorf("commits %d, ops %d: want fewer commits than calls", commits, ops)
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	o := options(t)
	dropTables(t, o)
	ctx := t.Context()
	if _, err := Open(ctx, Options{DSN: o.DSN, TablePrefix: o.TablePrefix, NoMigrate: true}); err == nil {
		t.Fatal("Open with NoMigrate on empty tables succeeded")
	}
	r, err := Migrate(ctx, o, true)
	if err != nil || len(r.Applied) != len(migrations) || r.From != 0 || len(r.History) != 0 {
		t.Fatalf("dry run = %+v, %v", r, err)
	}
	r, err = Migrate(ctx, o, false)
	if err != nil || len(r.Applied) != len(migrations) || r.To != SchemaVersion() || len(r.History) != len(migrations) {
		t.Fatalf("Migrate = %+v, %v", r, err)
	}
	r, err = Migrate(ctx, o, false)
	if err != nil || len(r.Applied) != 0 || r.From != SchemaVersion() {
		t.Fatalf("second Migrate = %+v, %v; want nothing to do", r, err)
	}
	no := o
	no.NoMigrate = true
	mustOpen(t, no)
	// A schema from a newer wprelay is refused.
	sqldb, _, _, err := connect(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	if _, err := sqldb.Exec("INSERT INTO " + o.TablePrefix + "migrations VALUES (999, 'future', NOW(6), 'test')"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, o); err == nil {
		t.Error("Open on a newer schema succeeded")
	}
}

func TestDB_Sealer(t *testing.T) {
	t.Parallel()
	o := options(t)
	dropTables(t, o)
	ctx := t.Context()
	key := func(id string, b byte) Key { return Key{ID: id, Secret: slices.Repeat([]byte{b}, 32)} }
	s1, _ := NewSealer([]Key{key("k1", 1)})
	o.Sealer = s1
	db, err := Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := db.Enqueue(ctx, &relay.Batch{Events: []relay.Incoming{incoming("secret", t0, "wp")}})
	if err != nil {
		t.Fatal(err)
	}
	id := outs[0].ID
	var env, raw []byte
	if err := db.sql.QueryRow("SELECT envelope, raw FROM "+db.t.bodies+" WHERE event_id = ?", id).Scan(&env, &raw); err != nil {
		t.Fatal(err)
	}
	if kid, ok := seal.KeyID(env); !ok || kid != "k1" {
		t.Errorf("envelope stored plain: %q", env)
	}
	if kid, ok := seal.KeyID(raw); !ok || kid != "k1" {
		t.Errorf("raw stored plain: %q", raw)
	}
	if r, err := db.Raw(ctx, id); err != nil || string(r.Body) != `{"id":"secret"}` {
		t.Errorf("Raw = %+v, %v", r, err)
	}
	db.Close()

	o.Sealer = nil
	if _, err := Open(ctx, o); err == nil {
		t.Error("Open without keys on an encrypted store succeeded")
	}
	o.Sealer, _ = NewSealer([]Key{key("other", 2)})
	if _, err := Open(ctx, o); !errors.Is(err, ErrWrongKey) {
		t.Errorf("Open with a wrong key: %v, want ErrWrongKey", err)
	}
	// Rotation: the new key first, the old one still listed.
	o.Sealer, _ = NewSealer([]Key{key("k2", 3), key("k1", 1)})
	db = mustOpen(t, o)
	if n, err := db.ResealAll(ctx, 10, nil); err != nil || n != 1 {
		t.Fatalf("ResealAll = %d, %v", n, err)
	}
	if err := db.sql.QueryRow("SELECT envelope FROM "+db.t.bodies+" WHERE event_id = ?", id).Scan(&env); err != nil {
		t.Fatal(err)
	}
	if kid, _ := seal.KeyID(env); kid != "k2" {
		t.Errorf("after ResealAll the envelope is sealed by %q", kid)
	}
	jobs, err := db.Claim(ctx, "wp", t0, 1, time.Minute)
	if err != nil || len(jobs) != 1 || string(jobs[0].Envelope) != `{"key":"secret"}` {
		t.Errorf("Claim = %+v, %v", jobs, err)
	}
}

func TestDB_Import(t *testing.T) {
	t.Parallel()
	o := options(t)
	dropTables(t, o)
	db := mustOpen(t, o)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	db.Now = func() time.Time { return now }
	ev := func(id, key string, ds ...relay.Delivery) *relay.Event {
		return &relay.Event{ID: id, Source: "stripe", Type: "invoice.paid", IdempotencyKey: key, ReceivedAt: now.Add(-time.Hour),
			Envelope: []byte(`{"id":"` + id + `"}`), Deliveries: ds}
	}
	attempt := relay.Attempt{At: now.Add(-time.Minute), Status: 503, Error: "HTTP 503"}
	items := []Imported{
		{Event: ev("e1", "k1", relay.Delivery{Target: "wp", Status: relay.DeliverySucceeded, Attempts: 1, History: []relay.Attempt{attempt}}),
			Raw: &relay.Raw{Method: "POST", Body: []byte("{}")}, KeyExpires: now.Add(time.Hour)},
		{Event: ev("e2", "k2", relay.Delivery{Target: "wp", Status: relay.DeliveryDead, Attempts: 1, DeadAt: now.Add(-time.Minute), Reason: "400"}), KeyExpires: now.Add(time.Hour)},
		{Event: ev("e3", "k3", relay.Delivery{Target: "wp", Status: relay.DeliveryInFlight, Attempts: 2, NextAt: now.Add(-2 * time.Minute)}), KeyExpires: now.Add(time.Hour)},
		{Event: ev("e4", "k4", relay.Delivery{Target: "wp", Status: relay.DeliveryRetrying, Attempts: 1, NextAt: now.Add(time.Hour)}), KeyExpires: now.Add(time.Hour)},
	}
	if n, err := db.Import(ctx, items); err != nil || n != 4 {
		t.Fatalf("Import = %d, %v", n, err)
	}
	if n, err := db.Import(ctx, items); err != nil || n != 0 {
		t.Fatalf("Import again = %d, %v; want 0", n, err)
	}
	s, err := db.Stats(ctx)
	if err != nil || s.Events[relay.EventDelivered] != 1 || s.Events[relay.EventFailed] != 1 || s.Events[relay.EventQueued] != 2 ||
		s.Dead != 1 || s.Pending != 2 || s.Deliveries[relay.DeliveryRetrying] != 2 {
		t.Errorf("Stats after import = %+v, %v", s, err)
	}
	if dead, _, err := db.DeadLetters(ctx, relay.DeadFilter{}, "", 10); err != nil || len(dead) != 1 || dead[0].EventID != "e2" {
		t.Errorf("DeadLetters = %+v, %v", dead, err)
	}
	jobs, err := db.Claim(ctx, "wp", now, 10, time.Minute)
	if err != nil || len(jobs) != 1 || jobs[0].EventID != "e3" || jobs[0].Attempts != 2 {
		t.Errorf("Claim after import = %+v, %v; want the in-flight e3 due again", jobs, err)
	}
	in := incoming("k1", now, "wp")
	outs, err := db.Enqueue(ctx, &relay.Batch{Events: []relay.Incoming{in}})
	if err != nil || outs[0].ID != "e1" || outs[0].Duplicate == outs[0].Conflict {
		t.Errorf("the imported key: %+v, %v; want the first id e1", outs, err)
	}
}

// TestDB_Prune_TwoNodes prunes from two nodes at once: every finished
// event goes exactly once, and the counts stay right.
func TestDB_Prune_TwoNodes(t *testing.T) {
	t.Parallel()
	a, b, _ := twoNodes(t)
	ctx := t.Context()
	var ins []relay.Incoming
	for i := range 400 {
		ins = append(ins, incoming(fmt.Sprintf("p%03d", i), t0, []string{"wp"}[:i%2]...))
	}
	if _, err := a.Enqueue(ctx, &relay.Batch{Events: ins}); err != nil {
		t.Fatal(err)
	}
	var total atomic.Int64
	var wg sync.WaitGroup
	for _, node := range []*DB{a, b, a, b} {
		wg.Go(func() {
			for {
				n, err := node.Prune(ctx, t0.Add(2*time.Hour), t0.Add(time.Minute), 25)
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					return
				}
				total.Add(int64(n))
			}
		})
	}
	wg.Wait()
	// 400 keys expired, 200 discarded events; 200 queued events stay.
	if total.Load() != 600 {
		t.Errorf("pruned %d records, want 600", total.Load())
	}
	s, err := b.Stats(ctx)
	if err != nil || s.Events[relay.EventDiscarded] != 0 || s.Events[relay.EventQueued] != 200 || s.Pending != 200 {
		t.Errorf("Stats after prune = %+v, %v", s, err)
	}
	var keys int
	if err := a.sql.QueryRow("SELECT COUNT(*) FROM " + a.t.keys).Scan(&keys); err != nil || keys != 0 {
		t.Errorf("%d keys left, %v", keys, err)
	}
}

// TestDB_LeastPrivilege opens an up-to-date schema as a user that may only
// read and write rows: serve migrates at start, but runs no DDL then.
func TestDB_LeastPrivilege(t *testing.T) {
	t.Parallel()
	o := options(t)
	if server == nil {
		t.Skip("needs the MariaDB started by the tests (users are created as root)")
	}
	dropTables(t, o)
	if _, err := Migrate(t.Context(), o, false); err != nil {
		t.Fatal(err)
	}
	user := "dml_" + o.TablePrefix
	if err := server.Exec(fmt.Sprintf("CREATE USER '%[1]s'@'localhost' IDENTIFIED BY 'pw'; GRANT SELECT, INSERT, UPDATE, DELETE ON wprelay_test.* TO '%[1]s'@'localhost'", user)); err != nil {
		t.Fatal(err)
	}
	dml := o
	dml.DSN = user + ":pw@unix(" + server.Socket + ")/wprelay_test"
	db := mustOpen(t, dml)
	if _, err := db.Enqueue(t.Context(), &relay.Batch{Events: []relay.Incoming{incoming("k1", t0, "wp")}}); err != nil {
		t.Fatalf("Enqueue as the DML user: %v", err)
	}
	fresh := options(t)
	fresh.DSN = dml.DSN
	if _, err := Open(t.Context(), fresh); err == nil {
		t.Error("the DML user created tables")
	}
}

// TestDB_Order_AcrossNodes claims and completes ordered deliveries from
// two nodes at once: a subject never has two deliveries in flight, and
// each subject's events are delivered in the order they occurred.
func TestDB_Order_AcrossNodes(t *testing.T) {
	t.Parallel()
	a, b, _ := twoNodes(t)
	ctx := t.Context()
	const subjects, perSubject = 4, 15
	var mu sync.Mutex
	occurred, subjectOf := map[string]time.Time{}, map[string]string{}
	var all []relay.Incoming
	for s := range subjects {
		for i := range perSubject {
			in := incoming(fmt.Sprintf("s%d-e%02d", s, i), t0, "crm")
			in.Event.OccurredAt = t0.Add(time.Duration(i) * time.Second)
			in.Event.Deliveries[0].Order = &relay.Order{Key: fmt.Sprintf("post:%d", s)}
			all = append(all, in)
		}
	}
	// Enqueued out of order, half on each node.
	slices.Reverse(all)
	var wg sync.WaitGroup
	for i, in := range all {
		node := []*DB{a, b}[i%2]
		wg.Go(func() {
			outs, err := node.Enqueue(ctx, &relay.Batch{Events: []relay.Incoming{in}})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			occurred[outs[0].ID] = in.Event.OccurredAt
			subjectOf[outs[0].ID] = in.Event.Deliveries[0].Order.Key
			mu.Unlock()
		})
	}
	wg.Wait()
	var (
		inFlight  = map[string]string{} // subject → event
		delivered = map[string][]time.Time{}
		done      atomic.Int64
		failed    atomic.Bool
	)
	now := t0.Add(time.Minute)
	for w := range 4 {
		node := []*DB{a, b}[w%2]
		wg.Go(func() {
			for done.Load() < subjects*perSubject && !failed.Load() {
				jobs, err := node.Claim(ctx, "crm", now, 3, time.Hour)
				if err != nil {
					t.Error(err)
					failed.Store(true)
					return
				}
				mu.Lock()
				for _, j := range jobs {
					s := subjectOf[j.EventID]
					if other, busy := inFlight[s]; busy {
						t.Errorf("%s: %s handed out while %s is in flight", s, j.EventID, other)
					}
					inFlight[s] = j.EventID
				}
				mu.Unlock()
				for _, j := range jobs {
					mu.Lock()
					s := subjectOf[j.EventID]
					delete(inFlight, s)
					delivered[s] = append(delivered[s], occurred[j.EventID])
					mu.Unlock()
					r := relay.Result{EventID: j.EventID, Target: "crm", Status: relay.DeliverySucceeded, Attempt: relay.Attempt{At: now, Status: 200}}
					if err := node.Complete(ctx, r); err != nil {
						t.Error(err)
						failed.Store(true)
						var typ, name, status string
						node.sql.QueryRow("SHOW ENGINE INNODB STATUS").Scan(&typ, &name, &status)
						if i := strings.Index(status, "LATEST DETECTED DEADLOCK"); i >= 0 {
							j := strings.Index(status[i:], "TRANSACTIONS\n")
							t.Log(status[i : i+j])
						}
						return
					}
					done.Add(1)
				}
				if len(jobs) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	for s, times := range delivered {
		if len(times) != perSubject || !slices.IsSortedFunc(times, func(x, y time.Time) int { return x.Compare(y) }) {
			t.Errorf("%s delivered %d events in the order %v", s, len(times), times)
		}
	}
}
