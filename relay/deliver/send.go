// The HTTP request of one attempt, and which failures are retried inside
// it (go-retryablehttp) rather than by the queue's schedule.

package deliver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/tracing"
)

// send makes the HTTP request. It returns the status (0 on network errors),
// the response header and the answer: its first 512 bytes, or, for a
// target with ReplyTo, up to MaxAnswer+1 bytes.
func (l *loop) send(ctx context.Context, job relay.Job, reqID string) (int, http.Header, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, l.t.Timeout)
	defer cancel()
	body, h, err := l.request(ctx, job, reqID, l.d.Now())
	if err != nil {
		return 0, nil, nil, err
	}
	ctx = context.WithValue(ctx, bodyKey{}, body)
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, l.t.URL, body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("request: %w", err)
	}
	req.Header = h
	if l.d.Tracer != nil {
		tracing.Inject(ctx, req.Header) // the attempt's span, started by attempt
	} else {
		req.Header.Set("Traceparent", relay.ChildTraceparent(job.TraceParent))
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, nil, cleanErr(err)
	}
	defer resp.Body.Close()
	keep := int64(512)
	if l.t.ReplyTo != "" {
		keep = l.d.MaxAnswer + 1
	}
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, keep))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if err := checkWordPressAnswer(l.t.Kind, resp); err != nil {
		return resp.StatusCode, resp.Header, answer, err
	}
	return resp.StatusCode, resp.Header, answer, nil
}

// errNotREST is a 2xx answer from a wordpress target that did not come from
// the plugin's REST route.
var errNotREST = errors.New("not a REST answer")

// checkWordPressAnswer refuses a 2xx HTML answer of a wordpress target:
// with plain permalinks, /wp-json/... serves the site's home page as 200
// text/html, and counting that as delivered would lose the event silently.
// It is retried, so a site whose permalinks are fixed recovers.
func checkWordPressAnswer(kind string, resp *http.Response) error {
	if kind != "wordpress" || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil
	}
	ct := resp.Header.Get("Content-Type")
	if !strings.HasPrefix(strings.ToLower(ct), "text/html") {
		return nil
	}
	return fmt.Errorf("%w: the wordpress target answered %d with Content-Type %q; the plugin's REST route did not handle it (plugin inactive, or plain permalinks: use ?rest_route=/wprelay/v1/events in the target URL)", errNotREST, resp.StatusCode, ct)
}

// bodyKey carries the request body to PrepareRetry.
type bodyKey struct{}

// retryConnErrors retries inside one attempt only when the connection could
// not be made or was reset before an answer; status codes and timeouts are
// left to the queue's schedule.
func retryConnErrors(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil || err == nil {
		return false, nil
	}
	if errors.Is(err, ErrBlockedAddress) {
		return false, err
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true, nil
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true, nil
	}
	return false, nil
}

// cleanErr shortens the error chain of a failed request to what an operator
// needs ("dial tcp 127.0.0.1:9: connection refused", "timeout").
func cleanErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("timeout: %w", err)
	}
	return err
}

func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}
