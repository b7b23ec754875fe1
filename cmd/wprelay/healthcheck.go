package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

const healthcheckSynopsis = `Ask a running sidecar whether it is ready, and exit 0 when it is, 1 when it is
not or does not answer. For container HEALTHCHECKs and monitors: the image
needs no curl or wget. By default it asks the admin listener's /readyz (no
token needed); with the admin listener off, ask the public /healthz.
--wait keeps asking until the sidecar is ready or the time is up (scripts
that start it and go on).`

const healthcheckExample = `  wprelay healthcheck
  wprelay healthcheck --url http://127.0.0.1:8080/healthz
  wprelay serve --config wprelay.yaml & wprelay healthcheck --wait 30s
  # Dockerfile:
  HEALTHCHECK CMD ["/usr/local/bin/wprelay", "healthcheck"]`

func cmdHealthcheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("healthcheck", healthcheckSynopsis, healthcheckExample, stderr)
	url := fs.String("url", "http://127.0.0.1:8081/readyz", "the URL to ask: /readyz of the admin listener, or /healthz")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for one answer")
	wait := fs.Duration("wait", 0, "keep asking until ready, for up to this long (e.g. 30s)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	c := &http.Client{Timeout: *timeout}
	deadline := time.Now().Add(*wait)
	for {
		msg, err := askReady(c, *url)
		if err == nil {
			fmt.Fprintln(stdout, msg)
			return nil
		}
		if time.Now().Add(200 * time.Millisecond).After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// askReady asks url once: nil and the answer when it is 200.
func askReady(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", fmt.Errorf("not answering: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(resp.Status + ": " + msg)
	}
	return msg, nil
}
