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
  check     check the store file's consistency (while the sidecar is stopped)
  rotate-key  re-seal stored bodies with the first encryption key
  version   print the version

Run "wprelay <command> --help" for a command's flags and an example.

Examples:
  wprelay serve                          # embedded default: data in ./data, a wordpress source
  wprelay init --dir /etc/wprelay        # write /etc/wprelay/wprelay.yaml and its secrets
  wprelay serve --config /etc/wprelay/wprelay.yaml
  wprelay sign --kind stripe --secret whsec_... --send http://127.0.0.1:8080/hooks/stripe
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code:
// 0 ok, 1 runtime failure, 2 usage or configuration error.
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
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "wprelay %s\n", version)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
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
