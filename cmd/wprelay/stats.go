package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/wprelay/wprelay/relay/admin"
)

func cmdStats(args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("stats [flags]",
		"Show the sidecar's counts: events and deliveries by status, the queue depth and how\n"+
			"long its oldest delivery has waited, the dead letters, and per target the circuit\n"+
			"breaker and the success rate of attempts since the sidecar started.",
		"  wprelay stats\n  wprelay stats --json | jq .queue_depth", stderr)
	cf.jsonFlag(fs)
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var s admin.StatsView
	if err := c.do(context.Background(), "GET", "/admin/v1/stats", nil, &s); err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, s)
	}
	tw := newTable(stdout)
	depth := fmt.Sprint(s.QueueDepth)
	if s.OldestPendingAge != nil {
		depth += fmt.Sprintf(" (oldest due %s UTC, waiting %.0fs)", fmtTime(s.OldestPending), *s.OldestPendingAge)
	}
	fmt.Fprintf(tw, "Version\t%s\n", orDash(s.Version))
	fmt.Fprintf(tw, "Started\t%s UTC\n", fmtTime(s.StartedAt))
	fmt.Fprintf(tw, "Queue depth\t%s\n", depth)
	fmt.Fprintf(tw, "Dead letters\t%d\n", s.DeadLetter)
	fmt.Fprintf(tw, "Events\t%s\n", counts(s.Events, "queued", "delivered", "failed", "discarded"))
	fmt.Fprintf(tw, "Deliveries\t%s\n", counts(s.Deliveries, "pending", "in_flight", "retrying", "succeeded", "dead", "skipped"))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Targets) == 0 {
		return nil
	}
	names := make([]string, 0, len(s.Targets))
	for n := range s.Targets {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(stdout)
	fmt.Fprintln(tw, "TARGET\tBREAKER\tATTEMPTS\tSUCCEEDED\tSUCCESS RATE")
	for _, n := range names {
		t := s.Targets[n]
		rate := "-"
		if t.SuccessRate != nil {
			rate = fmt.Sprintf("%.1f%%", 100**t.SuccessRate)
		}
		breaker := t.Breaker
		if !t.RetryAt.IsZero() {
			breaker += " (probe at " + fmtTime(t.RetryAt) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", n, breaker, t.Attempts, t.Succeeded, rate)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "(attempts and success rates since the sidecar started)")
	return nil
}

// counts shows a status → count map in a fixed order, then any other
// status the server reported.
func counts(m map[string]int, order ...string) string {
	var parts []string
	seen := map[string]bool{}
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		seen[k] = true
	}
	var rest []string
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
