// Command wprelay-bench measures wprelay: a load generator for the ingest
// path (pre-signed events, closed or open loop), a bare net/http handler to
// compare against, and a suite that runs the side-by-side rounds behind
// BENCH.md in one invocation.
//
// In the open loop, latency is measured from each request's intended send
// time, so a server that stalls cannot hide it by slowing the generator
// (no coordinated omission).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `wprelay-bench — measure wprelay's ingest and delivery paths.

Usage:
  wprelay-bench <command> [flags]

Commands:
  load    send pre-signed events to an ingest URL; print throughput and latency
  bare    serve a bare net/http handler that reads the body and answers 202
  suite   run every side-by-side round of BENCH.md against a wprelay binary
  fill    write N finished events straight into a data dir (memory and start-up tests)

Examples:
  WPRELAY_BENCH_SECRET=whsec_x wprelay-bench load -url http://127.0.0.1:8080/hooks/stripe -n 20000 -c 64
  wprelay-bench suite -bin bin/wprelay -out bench-results.json
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "load":
		err = cmdLoad(args, os.Stdout)
	case "bare":
		err = cmdBare(args)
	case "suite":
		err = cmdSuite(args, os.Stdout, os.Stderr)
	case "fill":
		err = cmdFill(args, os.Stderr)
	case "help", "-h", "--help":
		fmt.Fprint(os.Stdout, usage)
	default:
		fmt.Fprintf(os.Stderr, "wprelay-bench: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "wprelay-bench: %v\n", err)
		os.Exit(1)
	}
}

func newFlags(name, synopsis, example string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: wprelay-bench %s [flags]\n\n%s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
		fmt.Fprintf(out, "\nExample:\n%s\n", example)
	}
	return fs
}

var _ io.Writer = os.Stdout
