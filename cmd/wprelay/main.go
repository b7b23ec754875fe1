// Command wprelay is the webhook sidecar for WordPress: it verifies, dedupes
// and durably queues webhooks, then delivers them with JWT auth, retries and
// a dead-letter queue. Run "wprelay help" for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `wprelay — the webhook sidecar for WordPress.

Usage:
  wprelay <command> [flags]

Commands:
  serve     run the sidecar (reads wprelay.yaml, or runs on an embedded default)
  init      write a config with fresh secrets and print the wp-config.php lines
  sign      sign a body as a provider would (stripe, github, shopify, ...): print
            the headers or a curl command, or send it and print the answer
  check     validate a config (--config FILE) or a stopped sidecar's store file (--data-dir DIR)
  rotate-key  re-seal stored bodies with the first encryption key
  migrate   apply the MySQL/MariaDB store's schema migrations; migrate-store copies a bbolt store into it
  events    list, show and replay events (admin API): events list|show|replay
  dlq       the dead-letter queue (admin API): dlq list|replay
  stats     counts, queue depth, breakers and success rates (admin API)
  export    write events as JSON lines for backfills (admin API, or a stopped data dir)
  import    replay an export into a sidecar, deduped on the original keys
  backup    a consistent copy of the store while the sidecar serves (or of a stopped data dir)
  restore   put a backup in place as a stopped sidecar's store (keeps the old one as .bak)
  healthcheck  exit 0 when the sidecar answers ready (container HEALTHCHECKs)
  version   print the version

Run "wprelay <command> --help" for a command's flags and an example.

Examples:
  wprelay serve                          # embedded default: data in ./data, a wordpress source
  wprelay init --dir /etc/wprelay        # write /etc/wprelay/wprelay.yaml and its secrets
  wprelay serve --config /etc/wprelay/wprelay.yaml
  WPRELAY_SIGN_SECRET=whsec_... wprelay sign --kind stripe --send http://127.0.0.1:8080/hooks/stripe
  WPRELAY_ADMIN_TOKEN=... wprelay events list --status failed --since 24h
  wprelay export --since 7d > events.jsonl && wprelay import events.jsonl
  wprelay backup --token-file /etc/wprelay/secrets/admin_token /var/backups/wprelay/wprelay.db

Exit codes: 0 ok, 1 failure, 2 usage error; the admin API commands also
3 not found, 4 unauthorized or the admin API unreachable.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code:
// 0 ok, 1 runtime failure, 2 usage or configuration error; the admin API
// commands also 3 not found and 4 unauthorized or unreachable (exitError).
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(rest, stdout, stderr)
	case "init":
		err = cmdInit(rest, stdout, stderr)
	case "sign":
		err = cmdSign(rest, stdout, stderr)
	case "check":
		err = cmdCheck(rest, stdout, stderr)
	case "rotate-key":
		err = cmdRotateKey(rest, stdout, stderr)
	case "migrate", "migrate-store":
		err = cmdMigrate(cmd, rest, stdout, stderr)
	case "events":
		err = cmdEvents(rest, stdout, stderr)
	case "dlq":
		err = cmdDLQ(rest, stdout, stderr)
	case "stats":
		err = cmdStats(rest, stdout, stderr)
	case "export":
		err = cmdExport(rest, stdout, stderr)
	case "import":
		err = cmdImport(rest, stdout, stderr)
	case "backup":
		err = cmdBackup(rest, stdout, stderr)
	case "restore":
		err = cmdRestore(rest, stdout, stderr)
	case "healthcheck":
		err = cmdHealthcheck(rest, stdout, stderr)
	case "version", "--version", "-v", "help", "--help", "-h":
		if len(rest) > 0 {
			// "help serve" would be a fair guess at how to ask; say how.
			fmt.Fprintf(stderr, "wprelay %s: unexpected argument %q (for a command's flags: wprelay <command> --help)\n\n%s", cmd, rest[0], usage)
			return 2
		}
		if cmd == "version" || cmd == "--version" || cmd == "-v" {
			fmt.Fprintf(stdout, "wprelay %s\n", version)
		} else {
			fmt.Fprint(stdout, usage)
		}
	default:
		fmt.Fprintf(stderr, "wprelay: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "wprelay %s: %v\n", cmd, err)
		return 2
	case errors.As(err, new(exitError)):
		var ee exitError
		errors.As(err, &ee)
		fmt.Fprintf(stderr, "wprelay %s: %v\n", cmd, err)
		return ee.code
	default:
		fmt.Fprintf(stderr, "wprelay %s: %v\n", cmd, err)
		return 1
	}
}

// usageError marks errors in how a command was called or configured (exit 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// newFlags returns a FlagSet whose --help prints the command's description,
// its flags and an example, then returns flag.ErrHelp.
func newFlags(name, synopsis, example string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: wprelay %s [flags]\n\n%s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
		fmt.Fprintf(out, "\nExample:\n%s\n", example)
	}
	return fs
}

// signalContext is cancelled on the first SIGINT or SIGTERM; a second one
// exits at once.
func signalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		second := make(chan os.Signal, 1)
		signal.Notify(second, os.Interrupt, syscall.SIGTERM)
		<-second
		fmt.Fprintln(os.Stderr, "wprelay: second signal, exiting now")
		os.Exit(1)
	}()
	return ctx, cancel
}
