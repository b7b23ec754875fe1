package deliver

import (
	"testing"
	"time"
)

func TestBreaker_OpensHalfOpensCloses(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	b := &Breaker{Failures: 3, Cooldown: 10 * time.Second, MaxCooldown: 40 * time.Second}
	if got := b.Allow(now, 4); got != 4 {
		t.Fatalf("closed: Allow = %d", got)
	}
	b.Record(now, false)
	b.Record(now, false)
	b.Record(now, true) // success resets the count
	b.Record(now, false)
	b.Record(now, false)
	if s, _, _ := b.State(); s != BreakerClosed {
		t.Fatalf("state %s after 2 consecutive failures", s)
	}
	b.Record(now, false)
	if s, _, retry := b.State(); s != BreakerOpen || !retry.Equal(now.Add(10*time.Second)) {
		t.Fatalf("state %s retry %v, want open until +10s", s, retry)
	}
	if got := b.Allow(now.Add(9*time.Second), 4); got != 0 {
		t.Fatalf("open: Allow = %d", got)
	}
	if w := b.Wait(now.Add(4 * time.Second)); w != 6*time.Second {
		t.Fatalf("Wait = %v", w)
	}
	// Half-open: exactly one probe.
	if got := b.Allow(now.Add(10*time.Second), 4); got != 1 {
		t.Fatalf("half-open: Allow = %d, want 1", got)
	}
	if got := b.Allow(now.Add(10*time.Second), 4); got != 0 {
		t.Fatalf("second probe allowed")
	}
	// The probe fails: open again for twice as long.
	b.Record(now.Add(11*time.Second), false)
	if s, _, retry := b.State(); s != BreakerOpen || !retry.Equal(now.Add(31*time.Second)) {
		t.Fatalf("after failed probe: %s until %v", s, retry)
	}
	if got := b.Allow(now.Add(31*time.Second), 2); got != 1 {
		t.Fatalf("second half-open: Allow = %d", got)
	}
	b.Record(now.Add(32*time.Second), true)
	if s, _, _ := b.State(); s != BreakerClosed {
		t.Fatalf("after good probe: %s", s)
	}
	if got := b.Allow(now.Add(32*time.Second), 4); got != 4 {
		t.Fatalf("closed again: Allow = %d", got)
	}
}

func TestBreaker_ReleaseUnusedProbe(t *testing.T) {
	now := time.Now()
	b := &Breaker{Failures: 1, Cooldown: time.Second}
	b.Record(now, false)
	if got := b.Allow(now.Add(time.Second), 1); got != 1 {
		t.Fatal("no probe")
	}
	b.Release()
	if got := b.Allow(now.Add(time.Second), 1); got != 1 {
		t.Fatal("probe slot not released")
	}
}

func TestBreaker_CooldownCapped(t *testing.T) {
	now := time.Now()
	b := &Breaker{Failures: 1, Cooldown: time.Second, MaxCooldown: 3 * time.Second}
	b.Record(now, false)
	for i := 0; i < 5; i++ {
		now = now.Add(b.Wait(now))
		if b.Allow(now, 1) != 1 {
			t.Fatal("no probe")
		}
		b.Record(now, false)
	}
	if w := b.Wait(now); w != 3*time.Second {
		t.Fatalf("cool-down %v, want capped at 3s", w)
	}
}
