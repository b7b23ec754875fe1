package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wprelay/wprelay/relay/admin"
)

// dlqReplayStep is how many dead deliveries one replay request replays.
const dlqReplayStep = 500

func cmdDLQ(args []string, stdout, stderr io.Writer) error {
	return subcommand("dlq", "The dead-letter queue: deliveries that gave up (a final 4xx, too many attempts, too old).",
		map[string]func([]string, io.Writer, io.Writer) error{"list": cmdDLQList, "replay": cmdDLQReplay},
		[]string{"list", "replay"}, args, stdout, stderr)
}

type deadPage struct {
	Deliveries []admin.DeadView `json:"deliveries"`
	NextCursor string           `json:"next_cursor"`
}

// deadQuery returns the query of a dead-letter filter.
func deadQuery(source, target, since, until string, now time.Time) (url.Values, error) {
	q := url.Values{}
	if source != "" {
		q.Set("source", source)
	}
	if target != "" {
		q.Set("target", target)
	}
	return q, whenParams(q, now, map[string]string{"since": since, "until": until})
}

func cmdDLQList(args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("dlq list [flags]",
		"List dead deliveries, most recently dead first, with why each died.",
		"  wprelay dlq list --target wordpress --since 24h\n  wprelay dlq list --all --json", stderr)
	cf.jsonFlag(fs)
	source := fs.String("source", "", "only events of this source")
	target := fs.String("target", "", "only deliveries to this target")
	since := fs.String("since", "", "dead at or after: RFC 3339, a date, unix seconds, or an age (6h, 7d)")
	limit := fs.Int("limit", 50, "deliveries per page, 1 to 1000")
	all := fs.Bool("all", false, "follow every page")
	cursor := fs.String("cursor", "", "start at this page (from a previous listing)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	q, err := deadQuery(*source, *target, *since, "", time.Now())
	if err != nil {
		return err
	}
	q.Set("limit", strconv.Itoa(*limit))
	out, err := listDead(c, q, *cursor, *all)
	if err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, out)
	}
	tw := newTable(stdout)
	fmt.Fprintln(tw, "EVENT\tTARGET\tSOURCE\tTYPE\tDEAD AT (UTC)\tATTEMPTS\tREASON")
	for _, d := range out.Deliveries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.EventID, d.Target, orDash(d.Source), orDash(d.Type), fmtTime(d.DeadAt), d.Attempts, orDash(clip(d.Reason, 70)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(out.Deliveries) == 0 {
		fmt.Fprintln(stderr, "no dead deliveries match")
	}
	if out.NextCursor != "" {
		fmt.Fprintf(stderr, "more dead deliveries: add --cursor %s (or --all)\n", out.NextCursor)
	}
	return nil
}

func listDead(c *adminClient, q url.Values, cursor string, all bool) (deadPage, error) {
	out := deadPage{Deliveries: []admin.DeadView{}}
	for {
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page deadPage
		if err := c.do(context.Background(), "GET", "/admin/v1/dlq?"+q.Encode(), nil, &page); err != nil {
			return out, err
		}
		out.Deliveries = append(out.Deliveries, page.Deliveries...)
		cursor = page.NextCursor
		if !all || cursor == "" {
			break
		}
	}
	out.NextCursor = cursor
	return out, nil
}

func cmdDLQReplay(args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("dlq replay [flags]",
		"Replay dead deliveries (all of them, or those matching --source, --target, --since):\n"+
			"each is due now with a fresh retry budget and the same Idempotency-Key. It counts\n"+
			"them first and asks before replaying (--yes does not ask; without a terminal,\n"+
			"--yes is required). Large queues are replayed in steps, with progress on stderr;\n"+
			"deliveries that die again meanwhile are not replayed twice.",
		"  wprelay dlq replay --target wordpress            # after fixing the WordPress site\n"+
			"  wprelay dlq replay --source stripe --since 6h --yes", stderr)
	cf.jsonFlag(fs)
	source := fs.String("source", "", "only events of this source")
	target := fs.String("target", "", "only deliveries to this target")
	since := fs.String("since", "", "dead at or after: RFC 3339, a date, unix seconds, or an age (6h, 7d)")
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	start := time.Now()
	q, err := deadQuery(*source, *target, *since, "", start)
	if err != nil {
		return err
	}
	// Count what matches, up to the start: what dies from now on is not
	// part of this replay.
	q.Set("until", start.UTC().Format(time.RFC3339Nano))
	q.Set("limit", "1000")
	matched, err := listDead(c, q, "", true)
	if err != nil {
		return err
	}
	n := len(matched.Deliveries)
	filter := describeFilter(*source, *target, *since)
	if n == 0 {
		if cf.json {
			return printJSON(stdout, map[string]int{"matched": 0, "replayed": 0})
		}
		fmt.Fprintf(stdout, "no dead deliveries%s\n", filter)
		return nil
	}
	if !*yes {
		if !isTerminal(os.Stdin) {
			return usageError{fmt.Errorf("%s%s would be replayed: pass --yes to confirm (stdin is not a terminal)", plural(n, "dead delivery", "dead deliveries"), filter)}
		}
		fmt.Fprintf(stderr, "Replay %s%s? [y/N] ", plural(n, "dead delivery", "dead deliveries"), filter)
		answer, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			fmt.Fprintln(stderr, "nothing replayed")
			return nil
		}
	}
	body := admin.DeadReplay{Source: *source, Target: *target, Until: start.UTC().Format(time.RFC3339Nano), Limit: dlqReplayStep}
	if v := q.Get("since"); v != "" {
		body.Since = v
	}
	total := 0
	for {
		var res struct {
			Replayed int `json:"replayed"`
		}
		if err := c.do(context.Background(), "POST", "/admin/v1/dlq/replay", body, &res); err != nil {
			if total > 0 {
				fmt.Fprintf(stderr, "replayed %d before the error\n", total)
			}
			return err
		}
		total += res.Replayed
		fmt.Fprintf(stderr, "replayed %d/%d\n", total, max(n, total))
		if res.Replayed < dlqReplayStep {
			break
		}
	}
	if cf.json {
		return printJSON(stdout, map[string]int{"matched": n, "replayed": total})
	}
	them := "them"
	if total == 1 {
		them = "it"
	}
	fmt.Fprintf(stdout, "replayed %s%s; follow %s with: wprelay events list --status queued\n", plural(total, "dead delivery", "dead deliveries"), filter, them)
	return nil
}

func describeFilter(source, target, since string) string {
	var parts []string
	for _, p := range [][2]string{{"source", source}, {"target", target}, {"since", since}} {
		if p[1] != "" {
			parts = append(parts, p[0]+" "+p[1])
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// isTerminal tells whether f is an interactive terminal (not /dev/null,
// which is a character device too).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
