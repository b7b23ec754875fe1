//go:build integration

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a small tmpfs at dir so a test can fill it up or make it
// read-only. It needs root, which CI and the test stack have.
func mountTmpfs(t *testing.T, dir string, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("WPRELAY_SKIP_ROOT") == "1" {
			t.Skip("WPRELAY_SKIP_ROOT=1: skipping a test that mounts a tmpfs")
		}
		t.Fatal("this test mounts a tmpfs and needs root; run make test as root, or set WPRELAY_SKIP_ROOT=1 to skip it explicitly")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// checkStore runs `wprelay check` on a stopped sidecar's data dir.
func checkStore(t *testing.T, dataDir string) {
	t.Helper()
	out, err := binCmd("check", "--data-dir", dataDir).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(": ok")) {
		t.Fatalf("wprelay check: %v\n%s", err, out)
	}
}

// sendUntil posts fresh Stripe events until one is answered with status
// want (or max requests), returning the ids answered 202.
func sendUntil(t *testing.T, sc *sidecar, prefix string, want, max int) (acked []string, last reply) {
	t.Helper()
	for i := range max {
		body := stripeEvent(fmt.Sprintf("%s_%d", prefix, i), "invoice.created")
		last = post(t, sc.public+"/hooks/stripe", body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
		if last.Status == 202 {
			acked = append(acked, last.Body["id"].(string))
		}
		if last.Status == want {
			return acked, last
		}
	}
	t.Fatalf("no %d answer in %d requests (last %d %v)", want, max, last.Status, last.Body)
	return nil, last
}

func TestE2E_Faults_DiskFullThenRecovers(t *testing.T) {
	tg := newTarget(t, func(int, string) answer { return answer{status: 503} }) // keep deliveries queued
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	mountTmpfs(t, data, "4m")
	sc := startSidecar(t, dir, e2eConfig(tg.URL(), ""))

	// Leave a little room, then fill it with events.
	filler := filepath.Join(data, "filler")
	var st syscall.Statfs_t
	_ = syscall.Statfs(data, &st)
	free := int64(st.Bavail) * st.Bsize
	if err := os.WriteFile(filler, make([]byte, max(free-600<<10, 0)), 0o600); err != nil && !strings.Contains(err.Error(), "no space") {
		t.Fatal(err)
	}
	acked, full := sendUntil(t, sc, "evt_full", 503, 3000)
	if full.Body["error"] != "unavailable" || full.Header.Get("Retry-After") == "" {
		t.Fatalf("disk full answer: %d %v %v", full.Status, full.Body, full.Header)
	}
	// Still alive and answering.
	var stats map[string]any
	if st := sc.adminDo("GET", "/admin/v1/stats", "", &stats); st != 200 {
		t.Fatalf("stats while full: %d", st)
	}

	// Free the space: ingest works again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	more, _ := sendUntil(t, sc, "evt_after_full", 202, 5)
	acked = append(acked, more...)
	t.Logf("disk full: %d events acknowledged before 503, ingest recovered after freeing space", len(acked)-len(more))

	// Every acknowledged event is still there after a restart.
	sc.stop()
	checkStore(t, data)
	sc.start()
	for _, id := range acked {
		var ev eventView
		if st := sc.adminDo("GET", "/admin/v1/events/"+id, "", &ev); st != 200 || ev.ID != id {
			t.Fatalf("acknowledged event %s lost after disk full: %d", id, st)
		}
	}
}

// A read-only file system cannot be made so under a process that holds the
// file open for writing (the kernel refuses the remount), so the read-only
// case is the start: the sidecar must refuse to start, loudly, naming the
// problem — not serve and then answer 503 to every webhook.
func TestE2E_Faults_ReadOnlyDataDirFailsAtStart(t *testing.T) {
	tg := newTarget(t, nil)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	mountTmpfs(t, data, "16m")
	sc := startSidecar(t, dir, e2eConfig(tg.URL(), ""))
	acked, _ := sendUntil(t, sc, "evt_ro_before", 202, 1)
	sc.stop()

	if err := syscall.Mount("", data, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	out, err := binCmd("serve", "--config", filepath.Join(dir, "wprelay.yaml"), "--listen", freeAddr(t), "--admin-listen", freeAddr(t)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "read-only file system") {
		t.Fatalf("serve on a read-only data dir: err %v\n%s", err, out)
	}
	if err := syscall.Mount("", data, "", syscall.MS_REMOUNT, ""); err != nil {
		t.Fatalf("remount read-write: %v", err)
	}
	sc.start()
	sc.waitEvent(acked[0], "delivered", 10*time.Second)
}
