package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/wprelay/wprelay/relay/admin"
)

// importBytes bounds one import request (the server takes up to
// admin.MaxImportBody).
const importBytes = 8 << 20

const importSynopsis = `Replay a file written by "wprelay export" into a running sidecar, through its
admin API (POST /admin/v1/import). Each event goes through the ingest path
without signature verification (the stored signatures were redacted): it keeps
its id and idempotency key, is deduped on that key (an event already stored is
counted, not imported again, so importing a file twice adds nothing), and is
routed by the sidecar's routes of today, its deliveries due now. FILE "-" reads
stdin. Progress goes to stderr; lines that cannot be imported are listed there
and make the exit code 1.`

const importExample = `  wprelay export --since 30d --admin-url http://old-host:8081 > events.jsonl
  wprelay import events.jsonl --admin-url http://127.0.0.1:8081`

func cmdImport(args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("import FILE [flags]", importSynopsis, importExample, stderr)
	cf.jsonFlag(fs)
	batch := fs.Int("batch", 500, "lines per request")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usageError{fmt.Errorf("want one file (or - for stdin), got %d arguments", len(pos))}
	}
	if *batch < 1 {
		return usageError{errors.New("--batch must be at least 1")}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	in := io.Reader(os.Stdin)
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return usageError{err}
		}
		defer f.Close()
		in = f
	}
	total := admin.ImportResult{Failed: []admin.ImportFailed{}}
	var lastReport time.Time
	send := func(chunk []byte, firstLine int) error {
		resp, err := c.send(context.Background(), "POST", "/admin/v1/import", bytes.NewReader(chunk), "application/x-ndjson")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var res admin.ImportResult
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
			return fmt.Errorf("import: the answer is not the JSON expected: %w", err)
		}
		total.Imported += res.Imported
		total.Duplicates += res.Duplicates
		for _, f := range res.Failed {
			f.Line += firstLine - 1
			total.Failed = append(total.Failed, f)
			fmt.Fprintf(stderr, "line %d%s: %s\n", f.Line, idSuffix(f.ID), f.Error)
		}
		if time.Since(lastReport) >= time.Second {
			lastReport = time.Now()
			fmt.Fprintf(stderr, "%d lines read: %d imported, %d already present, %d failed\n",
				firstLine-1+bytes.Count(chunk, []byte("\n")), total.Imported, total.Duplicates, len(total.Failed))
		}
		return nil
	}
	r := bufio.NewReaderSize(in, 1<<20)
	var chunk []byte
	lines, first, lineNo := 0, 1, 0
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			lineNo++
			if line[len(line)-1] != '\n' {
				line = append(line, '\n')
			}
			if len(line) > admin.MaxImportBody {
				total.Failed = append(total.Failed, admin.ImportFailed{Line: lineNo, Error: "line longer than the import limit"})
				fmt.Fprintf(stderr, "line %d: longer than %d bytes, skipped\n", lineNo, admin.MaxImportBody)
				line = []byte("\n")
			}
			if lines > 0 && (lines == *batch || len(chunk)+len(line) > importBytes) {
				if err := send(chunk, first); err != nil {
					return err
				}
				chunk, lines, first = chunk[:0], 0, lineNo
			}
			chunk = append(chunk, line...)
			lines++
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if lines > 0 {
		if err := send(chunk, first); err != nil {
			return err
		}
	}
	if cf.json {
		if err := printJSON(stdout, total); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "imported %s, %d already present, %d failed\n", plural(total.Imported, "event", "events"), total.Duplicates, len(total.Failed))
	}
	if len(total.Failed) > 0 {
		return fmt.Errorf("%s could not be imported (listed above)", plural(len(total.Failed), "line", "lines"))
	}
	return nil
}

func idSuffix(id string) string {
	if id == "" {
		return ""
	}
	return " (id " + id + ")"
}
